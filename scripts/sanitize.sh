#!/usr/bin/env bash
# Builds core + CPU plugins + tests with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs
# ctest there. Usage: scripts/sanitize.sh [ctest args...], e.g. scripts/sanitize.sh -R 'sapling_tests:' for core only.
# SANITIZE_TARGETS (ninja targets, default all) and SANITIZE_TESTS (a ctest -R regex) pick a subset; JOBS sets
# the build parallelism (default: every core). The CI subset (core + fast plugin suites), see docs/reliability.md:
#   SANITIZE_TARGETS="sapling sapling_tests sapling_tests_alignment sapling_tests_foldseek_3di sapling_tests_template"
#   SANITIZE_TESTS="^sapling_tests(_alignment|_foldseek_3di|_template)?:"
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
# detect_leaks=0: LibTorch (not instrumented) and its thread pools keep allocations alive past exit, and Boost.DLL
# plugins are never unloaded by design; LeakSanitizer would report those on every test executable, including the
# catch_discover_tests run during the build. Heap overflows, use-after-free and UB are what this job is for.
# detect_odr_violation=0: gcc's ASan flags the same inline symbols in the core and the plugins (both link the
# same headers), which is not a real ODR violation.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_odr_violation=0:abort_on_error=1:strict_string_checks=1}
# UB is fatal (the default only prints), so a finding fails the test that triggers it.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
JOBS=${JOBS:-$(nproc)}
# -O1: sanitizer-friendly and much cheaper to compile than the Release -O3.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DSAPLING_SANITIZE=ON > build-asan.configure.log 2>&1 || { cat build-asan.configure.log; exit 1; }
start=$(date +%s)
# shellcheck disable=SC2086  # SANITIZE_TARGETS is a list of target names
ninja -C build-asan -j"$JOBS" ${SANITIZE_TARGETS:-}
built=$(date +%s)
echo "sanitize: build took $((built - start)) s"
status=0
if [[ -n "${SANITIZE_TESTS:-}" ]]; then
  ctest --test-dir build-asan --output-on-failure --timeout 1800 -R "$SANITIZE_TESTS" "$@" || status=$?
else
  ctest --test-dir build-asan --output-on-failure --timeout 1800 "$@" || status=$?
fi
echo "sanitize: tests took $(( $(date +%s) - built )) s (status $status)"
exit $status
