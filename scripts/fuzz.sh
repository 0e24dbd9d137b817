#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each for FUZZ_SECONDS (default 60), one at a
# time. Seeds: fuzz/corpus/<target>/ (committed, small); the grown corpus stays in build-fuzz/corpus/<target>/.
# Crashing inputs are stored in fuzz/crashes/<target>/. Usage: scripts/fuzz.sh [safetensors|fasta|structure|recipe]...
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=(safetensors fasta structure recipe); fi
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 -DSAPLING_FUZZ=ON \
  -DSAPLING_BUILD_TESTS=OFF > build-fuzz.configure.log 2>&1 || { cat build-fuzz.configure.log; exit 1; }
ninja -C build-fuzz -j"${JOBS:-$(nproc)}" $(printf 'fuzz_%s ' "${targets[@]}")
# Leak checks off: LibTorch (not instrumented) keeps global allocations; see docs/reliability.md.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_odr_violation=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
found=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "fuzz/crashes/$t"
  log="build-fuzz/fuzz_$t.log"
  # -rss_limit_mb / -malloc_limit_mb: an allocation above 2 GB counts as a finding (unbounded allocation);
  # -timeout: one input taking over 10 s counts as a hang.
  status=0
  "build-fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -detect_leaks=0 -print_final_stats=1 -artifact_prefix="fuzz/crashes/$t/" \
    "build-fuzz/corpus/$t" "fuzz/corpus/$t" > "$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz_$t: ${seconds} s, ${runs} inputs, ${cov:-cov: ?}, exit status $status (log: $log)"
  if [[ $status -ne 0 ]]; then
    found=1
    grep -m3 -E 'ERROR|runtime error|Test unit written' "$log" || true
  fi
done
exit $found
