"""Every safetensors file sapling wrote for the interop runs opens in the safetensors library, as documented."""
import json
import re
import struct
import tomllib

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

# Where NaN is documented (docs: core/data/include/sapling/dataset.hpp): missing atoms and absent B-factors.
MAY_HOLD_NAN = {"coords", "bfactor"}
# The dataset's documented arrays (dataset.hpp): name -> (dtype, shape with R = residues, n = chains, D = pGNN width).
DATASET_LAYOUT = {"offsets": ("I64", ["n+1"]), "sequence": ("U8", ["R"]), "coords": ("F32", ["R", 5, 3]),
                  "observed": ("BOOL", ["R"]), "bfactor": ("F32", ["R"]), "tokens": ("I16", ["R"]),
                  "embeddings": ("F16", ["R", "D"])}


def all_files(out_dir):
    files = sorted(out_dir.rglob("*.safetensors"))
    assert files, f"no safetensors file under {out_dir}"
    return files


def test_every_file_opens_both_ways_and_is_finite(out_dir):
    for path in all_files(out_dir):
        raw = path.read_bytes()
        header_size = struct.unpack("<Q", raw[:8])[0]
        # The safetensors writer pads the header to 8 bytes so tensors can be mapped in place.
        assert header_size % 8 == 0, f"{path}: header of {header_size} bytes is not 8-byte aligned"
        loaded = load_file(path)
        with safe_open(path, "pt") as f:
            assert sorted(f.keys()) == sorted(loaded), path
            for name in f.keys():
                tensor = f.get_tensor(name)
                same = torch.allclose(tensor, loaded[name], rtol=0, atol=0, equal_nan=True) \
                    if tensor.is_floating_point() else torch.equal(tensor, loaded[name])
                assert same, f"{path}:{name}: safe_open and load_file differ"
                if tensor.is_floating_point() and name not in MAY_HOLD_NAN:
                    assert torch.isfinite(tensor).all(), f"{path}:{name} holds non-finite values"
    print(f"{len(all_files(out_dir))} files checked")


@pytest.mark.parametrize("family", ["esm2", "amplify"])
def test_model_folders(out_dir, family):
    run = out_dir / f"{family}_run"
    losses = tomllib.loads((run / "recipe.toml").read_text())["losses"].keys()
    folders = [run / "final", run / "best", *sorted((run / "checkpoints").glob("step-*"))]
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        dtype = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}[config.get("dtype", "float32")]
        with safe_open(folder / "model.safetensors", "pt") as f:
            # transformers reads the "format" metadata to know the file holds PyTorch tensors.
            assert (f.metadata() or {}).get("format") == "pt", f"{folder}/model.safetensors metadata {f.metadata()}"
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
            model_shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        assert dtypes == {dtype}, f"{folder}/model.safetensors: dtypes {dtypes}, config dtype {dtype}"
        with safe_open(folder / "heads.safetensors", "pt") as f:
            heads = {k: f.get_slice(k).get_shape() for k in f.keys()}
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
        # heads.safetensors: "<loss>.<parameter>" (training_checkpoint.hpp), for losses of the recipe.
        assert heads and all(k.split(".")[0] in losses for k in heads), f"{folder}: heads {sorted(heads)}"
        if (folder / "optimizer.safetensors").exists():
            check_optimizer(folder / "optimizer.safetensors", model_shapes, heads)
        if (folder / "contact_head.safetensors").exists():
            with safe_open(folder / "contact_head.safetensors", "pt") as f:
                assert all(k.startswith("contact_head.") for k in f.keys()), list(f.keys())
    print(f"{family}: {len(folders)} folders checked")


def check_optimizer(path, model_shapes, head_shapes):
    # AdamW moments by parameter name: exp_avg.<model|heads>.<name>, exp_avg_sq.<...>, and the step count.
    params = {f"model.{k}": v for k, v in model_shapes.items()} | {f"heads.{k}": v for k, v in head_shapes.items()}
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        assert "step" in keys and f.get_tensor("step").numel() == 1
        for key in keys - {"step"}:
            moment, name = key.split(".", 1)
            assert moment in ("exp_avg", "exp_avg_sq"), f"{path}: {key}"
            if name not in params and name.startswith("model.contact_head.") and not f.get_tensor(key).any():
                # AMPLIFY's untrained contact head: in the optimizer (never stepped: zero moments) but, untrained,
                # not written to model.safetensors. ESM2 leaves its contact head out of the optimizer.
                print(f"note: {path.parent.name}/optimizer.safetensors has zero moments {key} for a tensor the "
                      "checkpoint does not hold")
                continue
            assert name in params, f"{path}: {key} names no parameter of model.safetensors / heads.safetensors"
            assert f.get_slice(key).get_shape() == params[name], key
            if moment == "exp_avg_sq":
                assert (f.get_tensor(key) >= 0).all(), f"{key} has negative second moments"
        assert {k.split(".", 1)[1] for k in keys if k.startswith("exp_avg.")} == \
            {k.split(".", 1)[1] for k in keys if k.startswith("exp_avg_sq.")}


def test_dataset_shards(out_dir):
    dataset = out_dir / "dataset"
    index = json.loads((dataset / "index.json").read_text())
    chains = []
    for shard in index["shards"]:
        path = dataset / shard["file"]
        with safe_open(path, "pt") as f:
            meta = f.metadata()
            assert meta["format"] == "sapling-structure-dataset" and meta["version"] == str(index["version"])
            data = {k: f.get_tensor(k) for k in f.keys()}
            kinds = {k: f.get_slice(k).get_dtype() for k in f.keys()}
        residues, n = shard["residues"], shard["chains"]
        sizes = {"R": residues, "n+1": n + 1, "D": index.get("embedding_dim")}
        for name, (dtype, shape) in DATASET_LAYOUT.items():
            if name not in data:
                assert name in ("tokens", "embeddings"), f"{path} lacks {name}"
                continue
            assert kinds[name] == dtype, f"{path}:{name} is {kinds[name]}, documented {dtype}"
            assert list(data[name].shape) == [sizes.get(s, s) for s in shape], f"{path}:{name} {data[name].shape}"
        offsets = data["offsets"].tolist()
        assert offsets[0] == 0 and offsets[-1] == residues and offsets == sorted(offsets)
        shard_chains = json.loads(meta["chains"])
        assert [b - a for a, b in zip(offsets, offsets[1:])] == [c["length"] for c in shard_chains]
        # Residues with a CA have finite CA coordinates (atom 1); tokens are states of the tokenizer.
        ca = data["coords"][:, 1]
        assert torch.isfinite(ca[data["observed"]]).all()
        if "tokens" in data:
            assert data["tokens"].min() >= 0 and data["tokens"].max() < index["token_states"]
        assert bytes(data["sequence"].tolist()).decode("ascii").isalpha()
        chains.append(shard_chains)
    # Version 2: every chain of the index names its shard and row; the shard's header holds the same metadata.
    for c in index["chains"]:
        assert {k: v for k, v in c.items() if k not in ("shard", "row")} == chains[c["shard"]][c["row"]]
    chains = [c for shard_chains in chains for c in shard_chains]
    print(f"dataset: {len(index['shards'])} shard(s), {len(chains)} chains, pGNN width {index.get('embedding_dim')}")


def residue_count(sequence):
    return len(re.findall(r"<[^<>]+>|[^<]", sequence))


@pytest.mark.parametrize("family", ["esm2", "amplify"])
def test_embed_outputs(out_dir, fasta_records, family):
    config = json.loads((out_dir / f"{family}_run" / "final" / "config.json").read_text())
    width = config["hidden_size"]
    path = out_dir / "embed" / f"{family}.safetensors"
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    print(f"{family} embed metadata: {meta}")
    assert meta.get("producer") == "sapling embed"
    for name, tensor in tensors.items():
        label, kind = name.split("/")
        kind = kind.split("@")[0]
        length = residue_count(fasta_records[label])
        expected = {"per_tok": [length, width], "mean": [width], "bos": [width], "contacts": [length, length]}[kind]
        assert list(tensor.shape) == expected and tensor.dtype == torch.float32, (name, tensor.shape, tensor.dtype)
        if kind == "mean":
            per_tok = tensors[name.replace("/mean", "/per_tok")]
            assert torch.allclose(per_tok.mean(0), tensor, atol=1e-6), f"{name} is not the mean of per_tok"
        if kind == "contacts":
            assert (tensor >= 0).all() and (tensor <= 1).all(), f"{name}: probabilities outside [0, 1]"
            assert torch.allclose(tensor, tensor.T, atol=1e-6), f"{name} is not symmetric"
    assert {name.split("/")[0] for name in tensors} == set(fasta_records)
