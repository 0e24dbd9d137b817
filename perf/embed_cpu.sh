#!/usr/bin/env bash
# Benchmark `embed-cpu` (BENCHMARKS.md workload 1): `sapling embed` with the 8M-shaped ESM2 on
# the bench's embed_{100,500}.fasta and a UniProt-like length mix (perf/uniprot_length_mix.py), last layer
# per-residue + mean, at 1 and 2 intra-op threads, side by side with PyTorch eager (perf/torch_esm2.py, fair-esm
# batching) and transformers' EsmModel (its tokenizer, batches of HF_BATCH sequences), alternating in rounds.
# Prints residues/s per run (each tool's own timing of the forward passes and pooling, model load and file
# writing excluded) with the wall time of the command, then a table of means and the ratios sapling / torch and
# sapling / transformers.
#
# The runs are perf/cpu_vs_torch.sh's embed-cpu workload (WORKLOADS=embed-cpu): its knobs apply (SIDES, ROUNDS,
# PYTHON, TORCH_ATTENTION, HF_ATTENTION, HF_BATCH, MIX_N, MIX_SEED, ...). Defaults here: MODEL the bundled
# float16 weights (computed in float32), FASTAS "embed_100 embed_500 uniprot_mix", THREADS "1 2", ROUNDS 1.
# DTYPE: fp32 (the default, comparable with the earlier tables) or bf16 (every side under bf16 autocast); auto
# runs sapling with --dtype auto and the python sides in float32. SIDES=sapling: sapling alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export MODEL=${MODEL:-datasets/models/esm2_t6_8M_uniprot_f16}
export FASTAS=${FASTAS:-"embed_100 embed_500 uniprot_mix"}
export THREADS=${THREADS:-"1 2"}
export ROUNDS=${ROUNDS:-1}
DTYPE=${DTYPE:-fp32}
if [[ $DTYPE == auto ]]; then
  export SAPLING_DTYPE=auto DTYPE=fp32
else
  export DTYPE
fi
WORKLOADS=embed-cpu exec bash perf/cpu_vs_torch.sh
