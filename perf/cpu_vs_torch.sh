#!/usr/bin/env bash
# Side-by-side CPU comparison of sapling, PyTorch eager (perf/torch_esm2.py) and Hugging Face transformers'
# EsmModel / EsmForMaskedLM for mlm-train-cpu and embed-cpu (issues #7, #29).
#
# Runs the sides alternately in one invocation (sapling, torch, transformers, sapling, torch, transformers, ...
# per thread count and round) so that drifting machine load hits all alike, checks parity first, and prints each
# run's residues/s (wall clock and per CPU-second) and, per workload and thread count, the means over rounds and
# the ratios sapling/torch and sapling/transformers.
# Residues are real residues (no specials, no pad) for every side and both workloads.
#
# The sides:
#   sapling       build/sapling embed (fair-esm batching: length-sorted, 4096 tokens per batch, truncation at
#                 1022) and build/perf/sapling_perf_mlm_train
#   torch         perf/torch_esm2.py --impl esm2: this repository's ESM2 in plain PyTorch, the same fair-esm
#                 batching, attention TORCH_ATTENTION (sdpa: F.scaled_dot_product_attention)
#   transformers  perf/torch_esm2.py --impl transformers: EsmModel.from_pretrained(MODEL, attn_implementation=
#                 HF_ATTENTION) with its tokenizer as its users batch (length-sorted, HF_BATCH sequences padded
#                 to the longest with attention_mask, truncation at 1022), torch.inference_mode; train:
#                 EsmForMaskedLM on the same batch
# DTYPE=bf16 runs every side under bf16 autocast (weights float32), fp32 none.
#
# Knobs (environment): MODEL, BENCH (folder of embed_*.fasta), PYTHON (the project's venv: torch, numpy,
# safetensors, transformers), SIDES ("sapling torch transformers"), THREADS ("1 2"), ROUNDS (2),
# WORKLOADS ("mlm-train-cpu embed-cpu"), FASTAS ("embed_100": names of BENCH/NAME.fasta, or uniprot_mix: MIX_N
# (200) real sequences with UniProt's length distribution, drawn by perf/uniprot_length_mix.py with MIX_SEED
# (0) from the data set uniprot20k: `sapling data fetch uniprot20k --to SAPLING_DATA_DIR`, or MIRROR=DIR to copy
# it from a data mirror; SAPLING_DATA_DIR defaults to out/perf/data), STEPS (3 timed train steps), WARMUP (1), DTYPE (fp32 or bf16), SAPLING_DTYPE (sapling embed's --dtype,
# default DTYPE; e.g. auto), TORCH_ATTENTION (sdpa where the torch has it, else manual), HF_ATTENTION (sdpa),
# HF_BATCH (8), SAPLING and TRAIN (the two sapling executables).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-../shared/models/esm2_t6_8M_uniprot}
BENCH=${BENCH:-../shared/bench}
PYTHON=${PYTHON:-.venv/bin/python}
SIDES=${SIDES:-"sapling torch transformers"}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"mlm-train-cpu embed-cpu"}
FASTAS=${FASTAS:-embed_100}
DATA=${SAPLING_DATA_DIR:-out/perf/data}  # where `sapling data fetch --to` put uniprot20k (the length mix's source)
MIX_N=${MIX_N:-200}
MIX_SEED=${MIX_SEED:-0}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
SAPLING=${SAPLING:-build/sapling}
TRAIN=${TRAIN:-build/perf/sapling_perf_mlm_train}
DTYPE=${DTYPE:-fp32}
SAPLING_DTYPE=${SAPLING_DTYPE:-$DTYPE}
HF_ATTENTION=${HF_ATTENTION:-sdpa}
HF_BATCH=${HF_BATCH:-8}
case $DTYPE in
  fp32) TORCH_DTYPE=float32 ;;
  bf16) TORCH_DTYPE=bf16 ;;
  *) echo "DTYPE must be fp32 or bf16 (SAPLING_DTYPE=auto sets sapling embed's alone)" >&2; exit 2 ;;
esac
for side in $SIDES; do
  case $side in sapling|torch|transformers) ;; *) echo "unknown side '$side' (sapling, torch, transformers)" >&2; exit 2 ;; esac
done
has() { [[ " $SIDES " == *" $1 "* ]]; }
TORCH_ATTENTION=${TORCH_ATTENTION:-$("$PYTHON" -c 'import torch.nn.functional as F; print("sdpa" if hasattr(F, "scaled_dot_product_attention") else "manual")')}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sapling's LibTorch: $(sed -n 's/^Torch_DIR:PATH=//p' build/CMakeCache.txt 2>/dev/null || echo '?');" \
  "python ($PYTHON): $("$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "model: $MODEL; sides: $SIDES; dtype: $DTYPE (sapling embed --dtype $SAPLING_DTYPE, torch --dtype $TORCH_DTYPE);" \
  "torch attention: $TORCH_ATTENTION; transformers attention: $HF_ATTENTION, $HF_BATCH sequences per embed batch"

# Wall-clock rate: last "residues/s: N" of our tools; `sapling embed` says "...: N residues/s on T threads".
rate() { sed -nE 's/^residues\/s: ([0-9.]+).*/\1/p; s/^embedded .*: ([0-9]+) residues\/s on.*/\1/p' | tail -1; }
# CPU rate (the machine is shared: wall time also counts other processes' turns). Train: the tools'
# own "per CPU-second" over the timed steps. Embed: residues / (user + sys of the command - its side's start-up
# CPU), the start-up (imports, model load, a one-sequence FASTA) measured once per side before the embed runs:
# without it the seconds python spends importing torch and transformers would count against the python sides.
cpu_rate() { sed -nE 's/.*per CPU-second: ([0-9.]+).*/\1/p' | tail -1; }
residues_of() { sed -nE 's/^embedded [0-9]+ sequences \(([0-9]+) residues\).*/\1/p; s/^torch embed: [0-9]+ sequences \(([0-9]+) residues\).*/\1/p' | tail -1; }
timed() { /usr/bin/time -f '%U %S %e' -o "$OUT/cpu" "$@"; }
command_cpu() { awk '{ printf "%.2f", $1 + $2 }' "$OUT/cpu"; }
command_cpu_rate() { awk -v r="$1" -v s="${2:-0}" '{ c = $1 + $2 - s; printf "%.1f", r / (c > 0.01 ? c : 0.01) }' "$OUT/cpu"; }
command_wall() { awk '{ printf "%.1f", $3 }' "$OUT/cpu"; }
RESULTS=$OUT/results.tsv  # workload threads side wall-rate cpu-rate
: > "$RESULTS"
record() {
  echo "$1	$2	$3	$4	$5" >>"$RESULTS"
  printf '  %-28s threads=%s %-12s %8s res/s wall %8s res/CPU-s%s\n' "$1" "$2" "$3" "$4" "$5" "${6:+  (command $6 s)}"
}
# FASTA of a name: BENCH/NAME.fasta, or the length mix, drawn into OUT (the same bytes for the same MIX_N, MIX_SEED).
fasta_of() { if [[ $1 == uniprot_mix ]]; then echo "$OUT/uniprot_mix.fasta"; else echo "$BENCH/$1.fasta"; fi; }
torch_train_args=(--impl esm2 --attention "$TORCH_ATTENTION")
hf_args=(--impl transformers --hf-attention "$HF_ATTENTION")
# One embed run of a side: embed SIDE THREADS FASTA NAME [--compare FILE]; output on stdout (and stderr for sapling).
embed() {
  local side=$1 t=$2 fasta=$3 name=$4; shift 4
  case $side in
    sapling) timed "$SAPLING" embed --model "$MODEL" --fasta "$fasta" --out "$OUT/$name.safetensors" \
               --include per_tok,mean --toks-per-batch 4096 --threads "$t" --dtype "$SAPLING_DTYPE" 2>&1 ;;
    torch) timed "$PYTHON" perf/torch_esm2.py --mode embed --impl esm2 --attention "$TORCH_ATTENTION" --model "$MODEL" \
             --fasta "$fasta" --toks-per-batch 4096 --threads "$t" --dtype "$TORCH_DTYPE" "$@" ;;
    transformers) timed "$PYTHON" perf/torch_esm2.py --mode embed "${hf_args[@]}" --model "$MODEL" --fasta "$fasta" \
                    --batch-size "$HF_BATCH" --threads "$t" --dtype "$TORCH_DTYPE" "$@" ;;
  esac
}
declare -A STARTUP  # side -> CPU seconds of a one-sequence embed command

for workload in $WORKLOADS; do
  echo
  case $workload in
    mlm-train-cpu)
      echo "== mlm-train-cpu: 8 x 256 tokens (first 8 sequences of embed_100.fasta with >= 254 residues, cropped),"
      echo "   15% of residues -> <mask> (mask-only), fwd + mean CE over masked + bwd + AdamW(0.9/0.95, wd 0.01, lr 1e-4);"
      echo "   $WARMUP warm-up + $STEPS timed steps per run, $DTYPE; the python sides train on the batch sapling dumped"
      # Parity first: sapling's logits on the benchmark batch against the PyTorch models'.
      "$TRAIN" --model "$MODEL" --fasta "$BENCH/embed_100.fasta" --threads 1 --warmup 0 --steps 1 --dump "$OUT/batch.safetensors" >/dev/null
      if has torch; then "$PYTHON" perf/torch_esm2.py --mode parity --model "$MODEL" --batch-file "$OUT/batch.safetensors" | sed 's/^/   /'; fi
      if has transformers; then "$PYTHON" perf/torch_esm2.py --mode parity "${hf_args[@]}" --model "$MODEL" --batch-file "$OUT/batch.safetensors" | sed 's/^/   /'; fi
      for round in $(seq "$ROUNDS"); do
        for t in $THREADS; do
          for side in $SIDES; do
            log=$OUT/train_${side}_$t.log
            case $side in
              sapling) "$TRAIN" --model "$MODEL" --fasta "$BENCH/embed_100.fasta" --threads "$t" --warmup "$WARMUP" \
                         --steps "$STEPS" --dtype "$TORCH_DTYPE" >"$log" ;;
              torch) "$PYTHON" perf/torch_esm2.py --mode train "${torch_train_args[@]}" --model "$MODEL" \
                       --batch-file "$OUT/batch.safetensors" --threads "$t" --warmup "$WARMUP" --steps "$STEPS" --dtype "$TORCH_DTYPE" >"$log" ;;
              transformers) "$PYTHON" perf/torch_esm2.py --mode train "${hf_args[@]}" --model "$MODEL" \
                              --batch-file "$OUT/batch.safetensors" --threads "$t" --warmup "$WARMUP" --steps "$STEPS" --dtype "$TORCH_DTYPE" >"$log" ;;
            esac
            [ "$round" = 1 ] && sed -n 1p "$log" | sed 's/^/   /'
            record "$workload" "$t" "$side" "$(rate <"$log")" "$(cpu_rate <"$log")"
          done
        done
      done
      ;;
    embed-cpu)
      # Start-up CPU of each side: the shortest sequence of embed_100.fasta alone.
      awk '/^>/ { if (s != "" && (best == "" || length(s) < length(best))) { best = s; bh = h } h = $0; s = ""; next }
           { s = s $0 } END { if (best == "" || length(s) < length(best)) { best = s; bh = h } print bh; print best }' \
        "$BENCH/embed_100.fasta" > "$OUT/one.fasta"
      for side in $SIDES; do
        embed "$side" "$(echo $THREADS | cut -d' ' -f1)" "$OUT/one.fasta" startup >"$OUT/startup.log"
        STARTUP[$side]=$(command_cpu)
      done
      echo "== start-up CPU seconds (imports, model load, one $(sed -n 2p "$OUT/one.fasta" | tr -d '\n' | wc -c)-residue sequence), subtracted in res/CPU-s:" \
        "$(for side in $SIDES; do printf '%s %s  ' "$side" "${STARTUP[$side]}"; done)"
      for name in $FASTAS; do
        fasta=$(fasta_of "$name")
        if [[ $name == uniprot_mix ]]; then
          # The source sequences through the data mechanism: the data set uniprot20k, copied from MIRROR when given.
          if [[ -n ${MIRROR:-} ]]; then "$SAPLING" data fetch uniprot20k --mirror "$MIRROR" --to "$DATA" --quiet
          else "$SAPLING" data verify uniprot20k --to "$DATA" --quiet; fi
          "$PYTHON" perf/uniprot_length_mix.py --source "$DATA/data/sequences/uniprot20k.fasta.gz" --n "$MIX_N" \
            --seed "$MIX_SEED" --out "$fasta" 2>&1 | sed 's/^/   /'
        fi
        [[ -f $fasta ]] || { echo "$fasta: no such FASTA" >&2; exit 2; }
        echo "== embed-cpu: $name ($fasta), last layer per_tok + mean, $DTYPE; sapling and torch: fair-esm batching (sorted, 4096 tokens,"
        echo "   truncation 1022); transformers: sorted, $HF_BATCH sequences per batch padded to the longest, truncation 1022"
        for round in $(seq "$ROUNDS"); do
          for t in $THREADS; do
            for side in $SIDES; do
              log=$OUT/embed_${side}_$t.log
              # The first python runs also diff their embeddings against sapling's output of this round.
              compare=()
              [ "$round" = 1 ] && [ "$t" = "$(echo $THREADS | cut -d' ' -f1)" ] && [[ -f $OUT/$name.safetensors ]] \
                && compare=(--compare "$OUT/$name.safetensors")
              embed "$side" "$t" "$fasta" "$name" "${compare[@]}" >"$log"
              grep -h '^parity' "$log" | sed "s/^/   $side: /" || true
              record "$workload:$name" "$t" "$side" "$(rate <"$log")" "$(command_cpu_rate "$(residues_of <"$log")" "${STARTUP[$side]}")" "$(command_wall)"
            done
          done
        done
      done
      ;;
    *) echo "unknown workload '$workload' (mlm-train-cpu, embed-cpu)" >&2; exit 2 ;;
  esac
done

echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
# Means over rounds per workload, threads and side; ratios sapling / each other side, wall clock then per CPU-second.
awk -F'\t' -v sides="$SIDES" -v dtype="$DTYPE" '
  { key = $1 "\t" $2; w[key, $3] += $4; c[key, $3] += $5; n[key, $3]++
    if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
  function mean(a, key, s) { return n[key, s] ? a[key, s] / n[key, s] : 0 }
  function ratio(x, y) { return (x > 0 && y > 0) ? sprintf("%.2f", x / y) : "-" }
  END {
    m = split(sides, side, " "); hasS = 0; for (j = 1; j <= m; j++) if (side[j] == "sapling") hasS = 1
    head = "| workload | dtype | threads"; rule = "|---|---|---"
    for (j = 1; j <= m; j++) { head = head " | " side[j] " res/s"; rule = rule "|---:" }
    if (hasS) for (j = 1; j <= m; j++) if (side[j] != "sapling") { head = head " | sapling / " side[j]; rule = rule "|---:" }
    for (j = 1; j <= m; j++) { head = head " | " side[j] " res/CPU-s"; rule = rule "|---:" }
    if (hasS) for (j = 1; j <= m; j++) if (side[j] != "sapling") { head = head " | sapling / " side[j] " (CPU)"; rule = rule "|---:" }
    print head " |"; print rule "|"
    for (i = 1; i <= k; i++) {
      key = order[i]; split(key, f, "\t"); row = "| " f[1] " | " dtype " | " f[2]
      for (j = 1; j <= m; j++) row = row " | " sprintf("%.0f", mean(w, key, side[j]))
      if (hasS) for (j = 1; j <= m; j++) if (side[j] != "sapling") row = row " | " ratio(mean(w, key, "sapling"), mean(w, key, side[j]))
      for (j = 1; j <= m; j++) row = row " | " sprintf("%.0f", mean(c, key, side[j]))
      if (hasS) for (j = 1; j <= m; j++) if (side[j] != "sapling") row = row " | " ratio(mean(c, key, "sapling"), mean(c, key, side[j]))
      print row " |"
    } }' "$RESULTS"
