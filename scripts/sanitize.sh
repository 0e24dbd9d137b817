#!/usr/bin/env bash
# Builds core + CPU plugins + tests with clang, AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitized-build.sh)
# and runs ctest in build-sanitize/. Usage: scripts/sanitize.sh [ctest args...]
# SANITIZE_TARGETS (ninja targets) and SANITIZE_TESTS (a ctest -R regex) pick a subset; the defaults are the CI
# subset (core + the fast plugin suites; the heavy esm2/amplify/gearnet parity suites are left out, their plugins
# are still built and exercised through sapling_tests), see docs/reliability.md. SANITIZE_TESTS=all runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitized-build.sh
sanitized_configure
# shellcheck disable=SC2086  # SANITIZE_TARGETS is a list of target names
sanitized_build ${SANITIZE_TARGETS:-sapling sapling_tests sapling_tests_alignment sapling_tests_foldseek_3di sapling_tests_template}
tests=${SANITIZE_TESTS:-^sapling_tests(_alignment|_foldseek_3di|_template)?:}
start=$(date +%s)
status=0
if [[ "$tests" == all ]]; then
  ctest --test-dir "$SANITIZED_BUILD_DIR" --output-on-failure --timeout 1800 "$@" || status=$?
else
  ctest --test-dir "$SANITIZED_BUILD_DIR" --output-on-failure --timeout 1800 -R "$tests" "$@" || status=$?
fi
echo "sanitize: tests took $(( $(date +%s) - start )) s (status $status)"
exit $status
