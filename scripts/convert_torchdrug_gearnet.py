#!/usr/bin/env python3
# Converts a torchdrug GearNet / GearNet-Edge checkpoint (.pth) into the safetensors file sapling's `gearnet` plugin loads.
"""Offline converter (not used at run time; needs PyTorch, which can unpickle .pth).

Accepts the raw model state dict that the GearNet authors release
(e.g. mc_gearnet_edge.pth), or a torchdrug Engine checkpoint
({"model": task.state_dict(), ...}) whose GearNet keys sit under a prefix
such as "model." (found automatically, or give --prefix).

Keeps exactly the GearNet keys (layers.*, edge_layers.*, batch_norms.*),
casts floating tensors to float32 and writes them (sorted) to a safetensors
file. Prints the recipe options matching the checkpoint.

  python3 scripts/convert_torchdrug_gearnet.py mc_gearnet_edge.pth gearnet_edge.safetensors
"""
import argparse
import json
import re
import struct
import sys

GEARNET_KEY = re.compile(r"^(layers|edge_layers|batch_norms)\.\d+\.")
ANCHOR = "layers.0.self_loop.weight"


def load_state_dict(path):
    import torch

    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # torchdrug Engine.save() layout
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        sys.exit(f"{path}: expected a state dict (mapping of names to tensors), got {type(obj).__name__}")
    return obj


def find_prefix(keys, path):
    # "edge_layers.0.self_loop.weight" also ends with the anchor: require a
    # boundary, and prefer the shortest (outermost) prefix.
    prefixes = [k[: -len(ANCHOR)] for k in keys if k == ANCHOR or k.endswith("." + ANCHOR)]
    prefixes = [p for p in prefixes if not p.endswith("edge_")]
    if not prefixes:
        sys.exit(f"{path}: no '{ANCHOR}' key: not a GearNet state dict (keys start with {sorted(keys)[:5]})")
    return min(prefixes, key=len)


def write_safetensors(path, tensors, metadata):
    try:
        from safetensors.torch import save_file

        save_file(tensors, path, metadata=metadata)
        return
    except ImportError:
        pass
    dtypes = {"torch.float32": "F32", "torch.float64": "F64", "torch.float16": "F16", "torch.int64": "I64",
              "torch.int32": "I32", "torch.uint8": "U8", "torch.bool": "BOOL"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.numpy().tobytes() if t.dim() else t.reshape(1).numpy().tobytes()
        header[name] = {"dtype": dtypes[str(t.dtype)], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # align the data area
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="torchdrug .pth (state dict or Engine checkpoint)")
    parser.add_argument("output", help="output .safetensors")
    parser.add_argument("--prefix", default=None, help="key prefix of the GearNet module (default: detect)")
    args = parser.parse_args()

    import torch

    state = load_state_dict(args.checkpoint)
    prefix = args.prefix if args.prefix is not None else find_prefix(list(state), args.checkpoint)
    tensors, skipped = {}, []
    for key, value in state.items():
        if not key.startswith(prefix) or not torch.is_tensor(value):
            skipped.append(key)
            continue
        name = key[len(prefix):]
        if not GEARNET_KEY.match(name):
            skipped.append(key)
            continue
        value = value.detach().cpu()
        tensors[name] = value.float() if value.is_floating_point() else value
    if not tensors:
        sys.exit(f"{args.checkpoint}: no GearNet keys under prefix '{prefix}'")

    hidden = []
    while f"layers.{len(hidden)}.self_loop.weight" in tensors:
        hidden.append(int(tensors[f"layers.{len(hidden)}.self_loop.weight"].shape[0]))
    edge = "edge_layers.0.linear.weight" in tensors
    num_bins = None
    if edge:
        w = tensors["edge_layers.0.linear.weight"]
        num_bins = int(w.shape[1]) // int(tensors["edge_layers.0.self_loop.weight"].shape[1])
    metadata = {"format": "sapling-gearnet", "source": args.checkpoint, "hidden_dims": ",".join(map(str, hidden)),
                "edge_feature": "true" if edge else "false"}
    if num_bins:
        metadata["num_angle_bins"] = str(num_bins)
    write_safetensors(args.output, tensors, metadata)

    print(f"wrote {len(tensors)} tensors to {args.output} (prefix '{prefix}', skipped {len(skipped)} other keys)")
    print("recipe options:")
    print(f"  hidden_dims = {hidden}")
    print(f"  edge_feature = {'true' if edge else 'false'}")
    if num_bins:
        print(f"  num_angle_bins = {num_bins}")


if __name__ == "__main__":
    main()
