#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, in build-sanitize/: scripts/sanitized-build.sh) and runs
# each for FUZZ_SECONDS (default 60), one at a time. Seeds: fuzz/corpus/<target>/ (committed, small); the grown
# corpus stays in build-sanitize/corpus/<target>/.
# Crashing inputs are stored in fuzz/crashes/<target>/. Usage: scripts/fuzz.sh [safetensors|fasta|structure|recipe|precomputed|downstream]...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitized-build.sh
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=(safetensors fasta structure recipe precomputed downstream); fi
sanitized_configure
sanitized_build $(printf 'fuzz_%s ' "${targets[@]}")
# libFuzzer reports a finding itself; abort_on_error would turn its crash report into a bare SIGABRT.
export ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0
found=0
for t in "${targets[@]}"; do
  mkdir -p "$SANITIZED_BUILD_DIR/corpus/$t" "fuzz/crashes/$t"
  log="$SANITIZED_BUILD_DIR/fuzz_$t.log"
  # -rss_limit_mb / -malloc_limit_mb: an allocation above 2 GB counts as a finding (unbounded allocation);
  # -timeout: one input taking over 10 s counts as a hang.
  status=0
  "$SANITIZED_BUILD_DIR/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -detect_leaks=0 -print_final_stats=1 -artifact_prefix="fuzz/crashes/$t/" \
    "$SANITIZED_BUILD_DIR/corpus/$t" "fuzz/corpus/$t" > "$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz_$t: ${seconds} s, ${runs} inputs, ${cov:-cov: ?}, exit status $status (log: $log)"
  if [[ $status -ne 0 ]]; then
    found=1
    grep -m3 -E 'ERROR|runtime error|Test unit written' "$log" || true
  fi
done
exit $found
