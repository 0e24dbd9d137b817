#!/usr/bin/env bash
# Side-by-side CPU comparison of sapling and PyTorch eager (perf/torch_esm2.py) for mlm-train-cpu and embed-cpu (issue #7).
#
# Runs the two sides alternately in one invocation (sapling, torch, sapling, torch, ... per thread
# count) so that drifting machine load hits both alike, checks parity first, and prints each run's
# residues/s (wall clock and per CPU-second) and, per workload and thread count, the means over rounds
# and the ratios sapling/torch.
# Residues are real residues (no specials, no pad) for both sides and both workloads.
#
# Knobs (environment): MODEL, BENCH (folder of embed_*.fasta), PYTHON (needs torch + numpy),
# THREADS ("1 2"), ROUNDS (2), WORKLOADS ("mlm-train-cpu embed-cpu"), FASTAS ("embed_100"),
# STEPS (3 timed train steps), WARMUP (1), SAPLING and TRAIN (the two sapling executables), SAPLING_DTYPE (fp32:
# float32 against float32; perf/cpu_dtypes.sh compares the bf16 paths).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-../shared/models/esm2_t6_8M_uniprot}
BENCH=${BENCH:-../shared/bench}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"mlm-train-cpu embed-cpu"}
FASTAS=${FASTAS:-embed_100}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
SAPLING=${SAPLING:-build/sapling}
TRAIN=${TRAIN:-build/perf/sapling_bench_mlm_train}
SAPLING_DTYPE=${SAPLING_DTYPE:-fp32}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "LibTorch (sapling): $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo '?'); torch (python): $("$PYTHON" -c 'import torch; print(torch.__version__)')"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "model: $MODEL"

# Wall-clock rate: last "residues/s: N" of our two tools; `sapling embed` says "...: N residues/s on T threads".
rate() { sed -nE 's/^residues\/s: ([0-9.]+).*/\1/p; s/^embedded .*: ([0-9]+) residues\/s on.*/\1/p' | tail -1; }
# CPU rate (the machine is shared: wall time also counts other processes' turns). Train: the tools'
# own "per CPU-second" over the timed steps. Embed: residues / (user + sys) of the whole command
# (model loading, and for torch the import, included: a small bias against both).
cpu_rate() { sed -nE 's/.*per CPU-second: ([0-9.]+).*/\1/p' | tail -1; }
residues_of() { sed -nE 's/^embedded [0-9]+ sequences \(([0-9]+) residues\).*/\1/p; s/^torch embed: [0-9]+ sequences \(([0-9]+) residues\).*/\1/p' | tail -1; }
timed() { /usr/bin/time -f '%U %S' -o "$OUT/cpu" "$@"; }
command_cpu_rate() { awk -v r="$1" '{ printf "%.1f", r / ($1 + $2) }' "$OUT/cpu"; }
RESULTS=$OUT/results.tsv  # workload threads side wall-rate cpu-rate
record() { echo "$1	$2	$3	$4	$5" >>"$RESULTS"; printf '  %-22s threads=%s %-7s %8s res/s wall %8s res/CPU-s\n' "$1" "$2" "$3" "$4" "$5"; }

for workload in $WORKLOADS; do
  echo
  case $workload in
    mlm-train-cpu)
      echo "== mlm-train-cpu: 8 x 256 tokens (first 8 sequences of embed_100.fasta with >= 254 residues, cropped),"
      echo "   15% of residues -> <mask> (mask-only), fwd + mean CE over masked + bwd + AdamW(0.9/0.95, wd 0.01, lr 1e-4);"
      echo "   $WARMUP warm-up + $STEPS timed steps per run; the torch side trains on the batch sapling dumped"
      # Parity first: sapling's logits on the benchmark batch against the PyTorch model's.
      "$TRAIN" --model "$MODEL" --fasta "$BENCH/embed_100.fasta" --threads 1 --warmup 0 --steps 1 --dump "$OUT/batch.safetensors" >/dev/null
      "$PYTHON" perf/torch_esm2.py --mode parity --model "$MODEL" --batch-file "$OUT/batch.safetensors" | sed 's/^/   /'
      for round in $(seq "$ROUNDS"); do
        for t in $THREADS; do
          log=$OUT/train_sapling_$t.log
          "$TRAIN" --model "$MODEL" --fasta "$BENCH/embed_100.fasta" --threads "$t" --warmup "$WARMUP" --steps "$STEPS" >"$log"
          [ "$round" = 1 ] && sed -n 1p "$log" | sed 's/^/   /'
          record "$workload" "$t" sapling "$(rate <"$log")" "$(cpu_rate <"$log")"
          log=$OUT/train_torch_$t.log
          "$PYTHON" perf/torch_esm2.py --mode train --model "$MODEL" --batch-file "$OUT/batch.safetensors" \
            --threads "$t" --warmup "$WARMUP" --steps "$STEPS" >"$log"
          [ "$round" = 1 ] && sed -n 1p "$log" | sed 's/^/   /'
          record "$workload" "$t" torch "$(rate <"$log")" "$(cpu_rate <"$log")"
        done
      done
      ;;
    embed-cpu)
      for fasta in $FASTAS; do
        echo "== embed-cpu: $fasta.fasta, last layer per_tok + mean, fair-esm batching (sorted, 4096 tokens, truncation 1022)"
        for round in $(seq "$ROUNDS"); do
          for t in $THREADS; do
            log=$OUT/embed_sapling_$t.log
            timed "$SAPLING" embed --model "$MODEL" --fasta "$BENCH/$fasta.fasta" --out "$OUT/$fasta.safetensors" \
              --include per_tok,mean --toks-per-batch 4096 --threads "$t" --dtype "$SAPLING_DTYPE" >"$log" 2>&1
            record "$workload:$fasta" "$t" sapling "$(rate <"$log")" "$(command_cpu_rate "$(residues_of <"$log")")"
            log=$OUT/embed_torch_$t.log
            # The first torch run also diffs its embeddings against sapling's output just written.
            compare=()
            [ "$round" = 1 ] && [ "$t" = "$(echo $THREADS | cut -d' ' -f1)" ] && compare=(--compare "$OUT/$fasta.safetensors")
            timed "$PYTHON" perf/torch_esm2.py --mode embed --model "$MODEL" --fasta "$BENCH/$fasta.fasta" \
              --toks-per-batch 4096 --threads "$t" "${compare[@]}" >"$log"
            grep -h '^parity' "$log" | sed 's/^/   /' || true
            record "$workload:$fasta" "$t" torch "$(rate <"$log")" "$(command_cpu_rate "$(residues_of <"$log")")"
          done
        done
      done
      ;;
    *) echo "unknown workload '$workload' (mlm-train-cpu, embed-cpu)" >&2; exit 2 ;;
  esac
done

echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| workload | threads | sapling res/s | torch res/s | sapling / torch | sapling res/CPU-s | torch res/CPU-s | sapling / torch (CPU) |"
echo "|---|---|---|---|---|---|---|---|"
awk -F'\t' '{ key = $1 "\t" $2; w[key, $3] += $4; c[key, $3] += $5; n[key, $3]++
               if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
  END { for (i = 1; i <= k; i++) { key = order[i]; split(key, f, "\t")
          sw = w[key, "sapling"] / n[key, "sapling"]; tw = w[key, "torch"] / n[key, "torch"]
          sc = c[key, "sapling"] / n[key, "sapling"]; tc = c[key, "torch"] / n[key, "torch"]
          printf "| %s | %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n", f[1], f[2], sw, tw, sw / tw, sc, tc, sc / tc } }' "$RESULTS"
