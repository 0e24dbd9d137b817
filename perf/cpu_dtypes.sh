#!/usr/bin/env bash
# Issue #19's side-by-side table on this CPU: PyTorch eager (perf/torch_esm2.py) in float32 and under CPU bf16
# autocast, sapling in float32 and with --dtype auto, for ESM2 shapes 8M (the pretrained model) to 650M
# (randomly initialised, written once as HF folders by torch_esm2.py --mode save-preset): embedding (`embed`,
# the first sequences of embed_500.fasta) and the MLM train step (`train`, N x 256 tokens). Prints every run,
# then one Markdown table of residues/s.
#
# Needs the data sets esm2_t6_8M_uniprot and embed_bench (`sapling data fetch esm2_t6_8M_uniprot embed_bench`, or
# MIRROR=DIR to copy them from a mirror such as ../shared into SAPLING_DATA_DIR, default out/perf/data).
# Knobs (environment): THREADS (1), SHAPES ("8M 35M 150M 650M"), PYTHON
# (needs torch + numpy), STEPS (2 timed train steps), WARMUP (3 untimed steps before them: the first steps of a
# 35M+ model grow the heap and fault in fresh pages, 1 warm-up step under-measured both sides), KEEP (a folder to keep the preset models in),
# TORCH_HEAP (1: PyTorch runs with the glibc heap settings sapling sets for itself, tune_allocator_for_tensors(),
# so that fresh score matrices cost it no page faults: the stricter comparison; 0: PyTorch's defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
SHAPES=${SHAPES:-"8M 35M 150M 650M"}
DATA=${SAPLING_DATA_DIR:-out/perf/data}  # where `sapling data fetch --to` put them
if [[ -n ${MIRROR:-} ]]; then build/sapling data fetch esm2_t6_8M_uniprot embed_bench --mirror "$MIRROR" --to "$DATA" --quiet
else build/sapling data verify esm2_t6_8M_uniprot embed_bench --to "$DATA" --quiet; fi
BENCH=$DATA/bench
MODEL8M=$DATA/models/esm2_t6_8M_uniprot
# The project's venv: the torch wheel sapling's LibTorch comes from (the light 1.13 build: Debian's /usr/bin/python3).
PYTHON=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo /usr/bin/python3 )}
# PyTorch's attention: SDPA where the torch has it (2.x), what a PyTorch user picks; TORCH_ATTENTION=manual for 1.13.
TORCH_ATTENTION=${TORCH_ATTENTION:-$("$PYTHON" -c 'import torch.nn.functional as F; print("sdpa" if hasattr(F, "scaled_dot_product_attention") else "manual")')}
STEPS=${STEPS:-2}
WARMUP=${WARMUP:-3}
TORCH_HEAP=${TORCH_HEAP:-1}
torch_env=()
(( TORCH_HEAP )) && torch_env=(env MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824)
WORK=${KEEP:-$(mktemp -d)}
mkdir -p "$WORK"
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); bf16 units:" \
  "$(grep -o -w 'amx_bf16\|avx512_bf16' /proc/cpuinfo | sort -u | xargs || echo none); threads $THREADS;" \
  "PyTorch heap settings as sapling's: $TORCH_HEAP"
echo "sapling's LibTorch: $(sed -n 's/^SAPLING_LIBTORCH:STRING=//p' build/CMakeCache.txt 2>/dev/null) build" \
  "($(sed -n 's/^Torch_DIR:PATH=//p' build/CMakeCache.txt 2>/dev/null)), python torch" \
  "$("$PYTHON" -c 'import torch; print(torch.__version__)') with $TORCH_ATTENTION attention; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

# shape -> preset name, sequences embedded, train batch (proteins of 256 tokens)
preset() { case $1 in 8M) echo esm2_t6_8M_UR50D;; 35M) echo esm2_t12_35M_UR50D;; 150M) echo esm2_t30_150M_UR50D;; 650M) echo esm2_t33_650M_UR50D;; esac; }
sequences() { case $1 in 8M) echo 100;; 35M) echo 40;; 150M) echo 12;; 650M) echo 4;; esac; }
batch() { case $1 in 8M|35M) echo 8;; 150M) echo 4;; 650M) echo 2;; esac; }
rate() { sed -nE 's/^residues\/s: ([0-9.]+).*/\1/p; s/^embedded .*: ([0-9]+) residues\/s on.*/\1/p' | tail -1; }
ROWS=$WORK/rows.tsv
: > "$ROWS"
cell() {  # workload shape side log
  local r; r=$(rate < "$4" || true)
  [[ -n $r ]] || r="failed: $(grep -m1 -o 'Error.*\|error.*' "$4" | cut -c1-80)"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$r" >> "$ROWS"
  printf '  %-6s %-5s %-14s %s\n' "$1" "$2" "$3" "$r"
}

for shape in $SHAPES; do
  model=$MODEL8M
  if [[ $shape != 8M ]]; then
    model=$WORK/esm2_$shape
    [[ -f $model/model.safetensors ]] || "$PYTHON" perf/torch_esm2.py --mode save-preset --preset "$(preset "$shape")" \
      --model "$MODEL8M" --out "$model" > /dev/null
  fi
  fasta=$WORK/embed_$shape.fasta
  awk -v n="$(sequences "$shape")" '/^>/ { if (++k > n) exit } { print }' "$BENCH/embed_500.fasta" > "$fasta"
  echo "== $shape: embed $(sequences "$shape") sequences of embed_500.fasta, train $(batch "$shape") x 256 tokens"
  for dtype in float32 bf16; do
    "${torch_env[@]}" "$PYTHON" perf/torch_esm2.py --mode embed --model "$model" --fasta "$fasta" --threads "$THREADS" --dtype "$dtype" \
      --attention "$TORCH_ATTENTION" \
      > "$WORK/log" 2>&1 || true
    cell embed "$shape" "torch $dtype" "$WORK/log"
  done
  for dtype in fp32 auto; do
    build/sapling embed --model "$model" --fasta "$fasta" --out "$WORK/e.safetensors" --include per_tok,mean \
      --toks-per-batch 4096 --threads "$THREADS" --dtype "$dtype" --mfu > "$WORK/log" 2>&1 || true
    cell embed "$shape" "sapling $dtype" "$WORK/log"
    [[ $dtype == auto ]] && grep -m1 '^compute:' "$WORK/log" | sed 's/^/    /'
    grep -m1 '^parameters:' "$WORK/log" | sed 's/^/    /' || true
  done
  train=(--model "$model" --fasta "$BENCH/embed_100.fasta" --threads "$THREADS" --warmup "$WARMUP" --steps "$STEPS" --batch "$(batch "$shape")")
  "${torch_env[@]}" "$PYTHON" perf/torch_esm2.py --mode train "${train[@]}" --attention "$TORCH_ATTENTION" > "$WORK/log" 2>&1 || true
  cell train "$shape" "torch float32" "$WORK/log"
  "${torch_env[@]}" "$PYTHON" perf/torch_esm2.py --mode train "${train[@]}" --attention "$TORCH_ATTENTION" --dtype bf16 > "$WORK/log" 2>&1 || true
  cell train "$shape" "torch bf16" "$WORK/log"
  build/perf/sapling_perf_mlm_train "${train[@]}" > "$WORK/log" 2>&1 || true
  cell train "$shape" "sapling fp32" "$WORK/log"
  grep -m1 '^parameters' "$WORK/log" | sed 's/^/    /' || true
  # auto: bf16 where the CPU has the units (as `sapling train` resolves [train] precision = "auto").
  auto=float32
  grep -q -w 'amx_bf16\|avx512_bf16' /proc/cpuinfo && auto=bf16
  build/perf/sapling_perf_mlm_train "${train[@]}" --dtype "$auto" > "$WORK/log" 2>&1 || true
  cell train "$shape" "sapling auto" "$WORK/log"
  grep -m2 '^path\|^parameters' "$WORK/log" | sed 's/^/    /' || true
done

echo
echo "| workload | shape | torch float32 | torch bf16 autocast | sapling fp32 | sapling auto | sapling auto / torch float32 |"
echo "|---|---|---:|---:|---:|---:|---:|"
awk -F'\t' '{ v[$1 "\t" $2, $3] = $4; if (!(($1 "\t" $2) in seen)) { seen[$1 "\t" $2] = 1; order[++k] = $1 "\t" $2 } }
  END { for (i = 1; i <= k; i++) { key = order[i]; split(key, f, "\t")
          t = v[key, "torch float32"]; a = v[key, "sapling auto"]
          ratio = (t + 0 > 0 && a + 0 > 0) ? sprintf("%.2f", a / t) : "-"
          printf "| %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], t, v[key, "torch bf16"], v[key, "sapling fp32"], a, ratio } }' "$ROWS"
