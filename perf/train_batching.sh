#!/usr/bin/env bash
# Benchmark of the trainer's batchings (issue #18): `sapling train` on the BM5 training chains with the
# 8M-shaped ESM2, MLM + 3Di losses, the same steps and seed under batching = proteins (published, 8 padded),
# tokens (8 proteins at most, 4096 padded tokens) and packed (8 proteins at most, 4096 real tokens);
# prints residues/s and the padding share from each run's metrics, then `sapling embed` padded vs --pack.
# Needs the data sets bm5 and embed_bench (`sapling data fetch bm5 embed_bench`, or MIRROR=DIR to copy them from a
# mirror such as ../shared); writes under out/perf/ (ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-30}
THREADS=${THREADS:-2}
S=build/sapling
OUT=out/perf
mkdir -p "$OUT"
DATA=${SAPLING_DATA_DIR:-$OUT/data}  # where `sapling data fetch --to` put them
if [[ -n ${MIRROR:-} ]]; then $S data fetch bm5 embed_bench --mirror "$MIRROR" --to "$DATA" --quiet
else $S data verify bm5 embed_bench --to "$DATA" --quiet; fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $THREADS threads, $STEPS steps"
[[ -f $OUT/bm5/index.json ]] || $S prepare "$DATA/data/structures/bm5" --out "$OUT/bm5" --tokenizer foldseek_3di \
  --valid-fraction 0.15 --seed 0 --split-by complex --threads "$THREADS" --quiet
cat > "$OUT/batching.toml" <<TOML
# Written by perf/train_batching.sh: MLM + 3Di structure tokens, no selection (no pGNN needed).
[model]
component = "esm2"
path = "../../datasets/models/esm2_t6_8M_uniprot_f16"
[losses.mlm]
component = "mlm"
weight = 1.0
[losses.structure_token]
component = "structure_token"
weight = 0.5
[selector]
component = "none"
[data]
dataset = "bm5"
max_length = 1022
proteins_per_batch = 8
tokens_per_batch = 4096
[train]
max_steps = $STEPS
valid_every = 0
checkpoint_every = 0
save_best = false
TOML
# Arms: batching[:pack_row_tokens] (packed rows default to about the micro-batch's longest protein).
for arm in proteins tokens packed packed:1024; do
  batching=${arm%%:*}
  rows=0; [[ $arm == *:* ]] && rows=${arm#*:}
  run=$OUT/train-${arm/:/-}
  rm -rf "$run"
  $S train "$OUT/batching.toml" --out "$run" --set data.batching=$batching --set data.pack_row_tokens=$rows \
    --threads "$THREADS" > "$run.log" 2>&1 || { tail -20 "$run.log"; exit 1; }
  # Steady state: the mean over steps after the first two (allocator warm-up).
  awk -v b=$arm -F'[,:{}]' '/"type":"train"/ {
      for (i = 1; i < NF; i++) { if ($i ~ /"residues_per_s"/) r = $(i+1); if ($i ~ /"padding"/) p = $(i+1); if ($i ~ /"step"/) s = $(i+1) }
      if (s > 2) { rs += r; ps += p; n++ } }
    END { printf "train %-12s residues/s %7.0f  padding %5.1f%%  (%d steps)\n", b, rs / n, 100 * ps / n, n }' "$run/metrics.jsonl"
done
for pack in "" --pack; do
  line=$($S embed --model datasets/models/esm2_t6_8M_uniprot_f16 --fasta "$DATA/bench/embed_500.fasta" \
    --out "$OUT/e.safetensors" --include per_tok,mean --toks-per-batch 4096 $pack --threads "$THREADS" 2>&1 | grep "^embedded")
  echo "embed ${pack:-padded}: ${line#embedded }"
done
rm -f "$OUT/e.safetensors"
