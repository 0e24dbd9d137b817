#!/usr/bin/env python3
"""Converts an HF-layout safetensors checkpoint (single file or sharded) to one float16 model.safetensors.

Used once to make datasets/models/esm2_t6_8M_uniprot_f16 from ../shared/models/esm2_t6_8M_uniprot
(see datasets/README.md). Needs only numpy: reads and writes the safetensors format directly.
Rotary inv_freq buffers stay float32 (the loader needs their exact values).
"""
import json, os, shutil, struct, sys
import numpy as np

DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "|u1", "BOOL": "|b1"}

def read(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        s, t = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + s:8 + n + t], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return out

def write(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        code = {"<f4": "F32", "<f2": "F16"}[a.dtype.str]
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes()); offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text))); f.write(text)
        for b in blobs: f.write(b)

def main(src, dst):
    os.makedirs(dst, exist_ok=True)
    index = os.path.join(src, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    tensors = {}
    for f in files: tensors.update(read(os.path.join(src, f)))
    # The tied decoder and the model-level rotary copy are redundant: the loader rebuilds both.
    for redundant in ("lm_head.decoder.weight", "esm.rotary_embeddings.inv_freq"):
        tensors.pop(redundant, None)
    conv = {k: (v.astype("<f4") if "inv_freq" in k else v.astype("<f2")) for k, v in tensors.items()}
    write(os.path.join(dst, "model.safetensors"), conv, {"format": "pt", "converted_from": os.path.basename(os.path.normpath(src)), "dtype": "float16"})
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["dtype"] = "float16"
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    print("wrote", dst, sum(v.nbytes for v in conv.values()), "bytes")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
