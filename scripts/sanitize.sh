#!/usr/bin/env bash
# Builds core, every CPU plugin, the CLI and the tests with clang, AddressSanitizer + UndefinedBehaviorSanitizer
# (scripts/sanitized-build.sh) and runs tests in build-sanitize/. Usage: scripts/sanitize.sh [ctest args...]
# By default everything is built and every ctest test runs (the full sanitized suite, see docs/reliability.md).
# Subsets:
#   SANITIZE_TARGETS  ninja targets to build (default: all)
#   SANITIZE_TESTS    a ctest -R regex;  SANITIZE_EXCLUDE  a ctest -E regex
#   SANITIZE_SUITES   "suite=catch-filter ..." runs those Catch2 executables directly with a tag filter
#                     instead of ctest (CI's job: scripts/ci-reliability.sh), e.g.
#   SANITIZE_TARGETS="sapling sapling_tests" SANITIZE_SUITES='sapling_tests=[fasta],[hostile]' scripts/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitized-build.sh
sanitized_configure
# shellcheck disable=SC2086  # SANITIZE_TARGETS is a list of target names
sanitized_build ${SANITIZE_TARGETS:-}
start=$(date +%s)
status=0
if [[ -n "${SANITIZE_SUITES:-}" ]]; then
  # Catch2 filters: a comma is "or", a tilde "not"; tests run from the source root as under ctest.
  for entry in $SANITIZE_SUITES; do
    suite=${entry%%=*}
    filter=${entry#*=}
    echo "sanitized $suite \"$filter\""
    "$SANITIZED_BUILD_DIR/tests/$suite" "$filter" --durations yes --reporter compact || status=$?
  done
else
  exclude=()
  [[ -n "${SANITIZE_EXCLUDE:-}" ]] && exclude=(-E "$SANITIZE_EXCLUDE")
  include=()
  [[ -n "${SANITIZE_TESTS:-}" ]] && include=(-R "$SANITIZE_TESTS")
  ctest --test-dir "$SANITIZED_BUILD_DIR" --output-on-failure --timeout 1800 "${include[@]}" "${exclude[@]}" "$@" || status=$?
fi
echo "sanitize: tests took $(( $(date +%s) - start )) s (status $status)"
exit $status
