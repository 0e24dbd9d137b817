#!/usr/bin/env bash
# Scale measurements of issue #31 (docs/scale.md): prepare throughput with 3Di and with a 6 x 512 GearNet-Edge,
# dataset bytes per residue, index open time and memory, part + merge cost, and the trainer's data path in
# residues/s with 512-d rows. The input is the bundled sample replicated with new ids and perturbed coordinates
# (perf/replicate_structures.py) in a temporary folder, never committed.
#
#   perf/prepare_scale.sh                 # ENTRIES=20000 files, GEARNET_FILES=60, results in $SCALE_DIR/summary.txt
#   ENTRIES=2000 GEARNET_FILES=10 perf/prepare_scale.sh    # a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SCALE=${SCALE_DIR:-/tmp/sapling-scale}
ENTRIES=${ENTRIES:-20000}
GEARNET_FILES=${GEARNET_FILES:-60}
THREADS=${THREADS:-$(nproc)}
PY=${PYTHON:-.venv/bin/python}
SAPLING=$BUILD/sapling
BENCH=$BUILD/perf/sapling_perf_data_path
MODEL=datasets/models/esm2_t6_8M_uniprot_f16
SUMMARY=$SCALE/summary.txt
mkdir -p "$SCALE"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
# Wall time and peak memory of a command, on one summary line.
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$SCALE/time.txt" "$@" > "$SCALE/last.log" 2>&1 || { cat "$SCALE/last.log"; exit 1; }
  read -r secs kb < "$SCALE/time.txt"
  say "$label: $secs s wall, peak RSS $((kb / 1024)) MB"
}
residues_of() { "$PY" -c "import json,sys; i=json.load(open(sys.argv[1]+'/index.json')); print(i['residues_total'], i['chains_total'])" "$1"; }
bytes_of() { du -sb --apparent-size "$1" | cut -f1; }
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.0f}" 'BEGIN { printf f, a / b }'; }

say "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $THREADS; $(date -u +%F)"
if [ ! -d "$SCALE/in" ] || [ "$(find "$SCALE/in" -name '*.gz' | wc -l)" -lt "$ENTRIES" ]; then
  rm -rf "$SCALE/in"
  "$PY" perf/replicate_structures.py --out "$SCALE/in" --entries "$ENTRIES" datasets/sample/bm5 datasets/sample/psicov
fi
files=$(find "$SCALE/in" -name '*.gz' | wc -l)
say "input: $files files ($(du -sh "$SCALE/in" | cut -f1) gzipped PDB)"

# 1. Structures and 3Di tokens, all files.
rm -rf "$SCALE/ds3di"
timed "prepare 3Di, $files files" "$SAPLING" prepare "$SCALE/in" --out "$SCALE/ds3di" --tokenizer foldseek_3di --threads "$THREADS" --quiet
read -r res chains < <(residues_of "$SCALE/ds3di")
secs=$(cut -d' ' -f1 "$SCALE/time.txt")
bytes=$(bytes_of "$SCALE/ds3di")
say "  $chains chains, $res residues: $(ratio "$files" "$secs" %.0f) files/s, $(ratio "$res" "$secs" %.0f) residues/s; dataset $((bytes / 1000000)) MB = $(ratio "$bytes" "$res" %.1f) bytes/residue (index.json $(($(stat -c %s "$SCALE/ds3di/index.json") / 1000000)) MB)"

# 2. The same as 2 parts, one after the other, then the merge (copies nothing).
rm -rf "$SCALE/parts"
for k in 0 1; do
  timed "prepare 3Di part $k/2" "$SAPLING" prepare "$SCALE/in" --out "$SCALE/parts" --tokenizer foldseek_3di --threads "$THREADS" --part "$k/2" --quiet
done
timed "merge of 2 parts" "$SAPLING" prepare --merge --out "$SCALE/parts"

# 3. An update that adds 10% new files to the 3Di dataset.
rm -rf "$SCALE/extra" && mkdir -p "$SCALE/extra"
"$PY" perf/replicate_structures.py --out "$SCALE/extra/in" --entries $((files / 10)) --seed 1 datasets/sample/bm5 datasets/sample/psicov 2> /dev/null
# New ids: move the extra replicas under names the main input does not use (prefix 8).
find "$SCALE/extra/in" -type f -name '9*' | while read -r f; do d=$(dirname "$f"); b=$(basename "$f"); mv "$f" "$d/8${b:1}"; done
timed "update +$((files / 10)) files (the rest unchanged)" "$SAPLING" prepare "$SCALE/in" "$SCALE/extra/in" --out "$SCALE/ds3di" --tokenizer foldseek_3di --threads "$THREADS" --update --quiet

# 4. GearNet-Edge 6 x 512 (random weights: the arithmetic of the published model), last layer stored (512-d).
rm -rf "$SCALE/gn_in" && mkdir -p "$SCALE/gn_in"
find "$SCALE/in" -name '*.gz' | sort > "$SCALE/files.txt"
head -n "$GEARNET_FILES" "$SCALE/files.txt" | while read -r f; do ln -s "$(readlink -f "$f")" "$SCALE/gn_in/"; done
rm -rf "$SCALE/ds_gn512"
timed "prepare 3Di + GearNet-Edge 6x512 (output last), $GEARNET_FILES files" "$SAPLING" prepare "$SCALE/gn_in" --out "$SCALE/ds_gn512" \
  --tokenizer foldseek_3di --pgnn gearnet --allow-random-pgnn --set pgnn.output=last --threads "$THREADS" --quiet
read -r gres gchains < <(residues_of "$SCALE/ds_gn512")
gsecs=$(cut -d' ' -f1 "$SCALE/time.txt")
gbytes=$(bytes_of "$SCALE/ds_gn512")
say "  $gchains chains, $gres residues: $(ratio "$GEARNET_FILES" "$gsecs" %.2f) files/s, $(ratio "$gres" "$gsecs" %.0f) residues/s; $(ratio "$gbytes" "$gres" %.0f) bytes/residue"
rm -rf "$SCALE/ds_gn128"
timed "prepare 3Di + bundled GearNet-Edge 6x128 (concat, 768-d), $GEARNET_FILES files" "$SAPLING" prepare "$SCALE/gn_in" --out "$SCALE/ds_gn128" \
  --tokenizer foldseek_3di --pgnn gearnet --pgnn-weights datasets/models/gearnet_edge_mc_6x128.safetensors --threads "$THREADS" --quiet

# 5. Index open time and the trainer's data path (one thread), 512-d rows.
"$BENCH" --dataset "$SCALE/ds3di" --model "$MODEL" --seconds 1 | grep '^index' | sed 's/^/  3Di dataset /' | tee -a "$SUMMARY"
rm -rf "$SCALE/rows512"
"$BENCH" --make-rows "$SCALE/rows512" --dataset "$SCALE/ds3di" --embedding-dim 512 --chains "${ROW_CHAINS:-6000}" | tee -a "$SUMMARY"
for mode in "--batching proteins --proteins-per-batch 8" "--batching packed --tokens-per-batch 16384"; do
  # shellcheck disable=SC2086
  "$BENCH" --dataset "$SCALE/rows512" --model "$MODEL" --seconds "${BENCH_SECONDS:-10}" $mode --threads 1 | grep -v '^index' | tee -a "$SUMMARY"
done
say "summary: $SUMMARY"
