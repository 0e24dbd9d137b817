#!/usr/bin/env bash
# Builds core, every CPU plugin, the CLI and the tests with clang, AddressSanitizer + UndefinedBehaviorSanitizer
# (scripts/sanitized-build.sh) and runs ctest in build-sanitize/. Usage: scripts/sanitize.sh [ctest args...]
# By default everything is built and every test runs (CI does this, see docs/reliability.md); SANITIZE_TARGETS
# (ninja targets), SANITIZE_TESTS (a ctest -R regex) and SANITIZE_EXCLUDE (a ctest -E regex) pick a subset, e.g.
#   SANITIZE_TARGETS="sapling sapling_tests" SANITIZE_TESTS='^sapling_tests:' scripts/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitized-build.sh
sanitized_configure
# shellcheck disable=SC2086  # SANITIZE_TARGETS is a list of target names
sanitized_build ${SANITIZE_TARGETS:-}
tests=${SANITIZE_TESTS:-all}
# SANITIZE_EXCLUDE (a ctest -E regex) leaves tests out, e.g. CI's long real-data evaluation runs.
exclude=()
[[ -n "${SANITIZE_EXCLUDE:-}" ]] && exclude=(-E "$SANITIZE_EXCLUDE")
start=$(date +%s)
status=0
if [[ "$tests" == all ]]; then
  ctest --test-dir "$SANITIZED_BUILD_DIR" --output-on-failure --timeout 1800 "${exclude[@]}" "$@" || status=$?
else
  ctest --test-dir "$SANITIZED_BUILD_DIR" --output-on-failure --timeout 1800 -R "$tests" "${exclude[@]}" "$@" || status=$?
fi
echo "sanitize: tests took $(( $(date +%s) - start )) s (status $status)"
exit $status
