#!/usr/bin/env python3
# A prepared dataset's pGNN embeddings -> one ENTRY_CHAIN.npy per chain, the folder the `precomputed` encoder reads.
"""usage: dataset_embeddings.py DATASET OUT_DIR

Writes each chain's stored embeddings (float16 [L, D], as `sapling prepare --pgnn` stored them) to
OUT_DIR/ENTRY_CHAIN.npy. Fed back with `--pgnn precomputed --set pgnn.dir=OUT_DIR` (or [pgnn] plugin =
"precomputed"), they reproduce the dataset's embeddings exactly. Needs numpy and safetensors (the project's venv:
.venv/bin/python plugins/precomputed/scripts/dataset_embeddings.py DATASET OUT_DIR)."""
import json
import os
import sys

import numpy as np
from safetensors import safe_open


def main(dataset, out_dir):
    with open(os.path.join(dataset, "index.json")) as fh:
        index = json.load(fh)
    chains = index["chains"]
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for shard in index["shards"]:
        with safe_open(os.path.join(dataset, shard["file"]), framework="numpy") as f:
            if "embeddings" not in f.keys():
                sys.exit(f"{dataset}: no embeddings (prepare it with --pgnn NAME)")
            embeddings, offsets = f.get_tensor("embeddings"), f.get_tensor("offsets")
        for k in range(shard["chains"]):
            meta = chains[written]
            key = meta["entry"] + ("_" + meta["chain"] if meta["chain"] else "")
            np.save(os.path.join(out_dir, key + ".npy"), embeddings[offsets[k]:offsets[k + 1]])
            written += 1
    print(f"wrote {written} files to {out_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
