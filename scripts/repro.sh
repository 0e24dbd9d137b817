#!/usr/bin/env bash
# The small-scale reproduction of docs/results.md, end to end: prepares the BM5 (split by complex) and PSICOV
# (high-quality) datasets, trains the two reference models, then runs benches/repro_esm2.toml and
# benches/repro_amplify.toml (which train every arm per seed and evaluate it). Re-running reuses what is done.
# Usage: scripts/repro.sh   (SHARED=path/to/shared, THREADS=intra-op threads per process, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
# The evaluation tasks read their default data from $SAPLING_DATA_DIR/data; the mirror has that layout.
export SAPLING_DATA_DIR=${SAPLING_DATA_DIR:-$(realpath "$SHARED")}
THREADS=${THREADS:-1}
S=build/sapling
source scripts/repro_data.sh  # prepare_psicov, held_out_unbound
[[ -x $S ]] || bash scripts/build.sh
mkdir -p out/repro/models
# The recipes name the base models through these links, so they need no absolute paths.
for model in esm2_t6_8M_uniprot amplify_small_uniprot; do
  ln -sfn "$(realpath "$SHARED/models/$model")" "out/repro/models/$model"
done
# Training structures: BM5, 15% of the complexes held out (bound and unbound forms of a complex stay together).
[[ -f out/repro/bm5/index.json ]] || $S prepare "$SHARED/data/structures/bm5" --out out/repro/bm5 \
  --tokenizer foldseek_3di --valid-fraction 0.15 --seed 0 --split-by complex --threads "$THREADS"
# The reference model's high-quality set: the full PSICOV entries (their headers carry method and resolution).
[[ -f out/repro/psicov/index.json ]] ||
  prepare_psicov $S "$SHARED/data/structures/psicov" out/repro/psicov --threads "$THREADS"
# Contact evaluation set: the unbound structures of the held-out BM5 complexes (never trained on).
# As absolute paths: index.json records the sources as `prepare` was given them (relative to this folder), and
# the evaluation tasks read a list's relative entries from the list's own folder.
held_out_unbound out/repro/bm5/index.json | xargs realpath > out/repro/bm5_valid_unbound.txt
for family in esm2 amplify; do
  run=out/repro/runs/${family}_reference
  if [[ ! -f $run/summary.json ]]; then
    resume=(); [[ -d $run ]] && resume=(--resume)
    $S train "recipes/repro/${family}_reference.toml" --threads "$THREADS" "${resume[@]}"
  fi
done
$S bench benches/repro_esm2.toml --threads "$THREADS"
$S bench benches/repro_amplify.toml --threads "$THREADS"
echo "tables: out/repro/bench_esm2/results.md, out/repro/bench_amplify/results.md (plots in their plots/)"
