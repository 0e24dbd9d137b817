#!/usr/bin/env bash
# CI's reliability job (.ci/run, after the test suite): the sanitized clang build (ASan + UBSan) runs every test,
# then every fuzz target runs for FUZZ_SECONDS (default 30) on its seed corpus; any finding fails the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --sanitizers
start=$(date +%s)
bash scripts/sanitize.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh
echo "reliability job: $(( $(date +%s) - start )) s"
