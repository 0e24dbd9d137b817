#!/usr/bin/env bash
# Benchmark `embed-cpu` (BENCHMARKS.md workload 1): `sapling embed` with the 8M-shaped ESM2 on
# ../shared/bench/embed_{100,500}.fasta, last layer per-residue + mean, 4096-token batches,
# at 1 and 2 intra-op threads. Prints residues/s per run (sapling's own timing of the forward
# passes and pooling, model load and file writing excluded) and the wall time of the command. DTYPE: fp32 (the
# default here, comparable with the earlier tables), auto or bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-datasets/models/esm2_t6_8M_uniprot_f16}
BENCH=${BENCH:-../shared/bench}
OUT=$(mktemp -d)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
for fasta in embed_100 embed_500; do
  for threads in 1 2; do
    start=$(date +%s.%N)
    line=$(build/sapling embed --model "$MODEL" --fasta "$BENCH/$fasta.fasta" --out "$OUT/e.safetensors" \
      --include per_tok,mean --toks-per-batch 4096 --threads "$threads" --dtype "${DTYPE:-fp32}" 2>&1 | grep "^embedded")
    end=$(date +%s.%N)
    echo "$fasta threads=$threads: ${line#embedded } (command wall $(awk "BEGIN{printf \"%.1f\", $end - $start}") s)"
  done
done
rm -rf "$OUT"
