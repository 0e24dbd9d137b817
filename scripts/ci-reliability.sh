#!/usr/bin/env bash
# CI's reliability job (.ci/run, after the test suite): the sanitized clang build (ASan + UBSan) runs the tests (all
# but three long real-data evaluation runs and the packaging test, below),
# then every fuzz target runs for FUZZ_SECONDS (default 30) on its seed corpus; any finding fails the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --sanitizers
start=$(date +%s)
# Every test runs sanitized except three end-to-end evaluation runs on real downstream data (GB1 fitness,
# TEM-1 variant effects, FLIP binding/conservation probes): minutes of pLM forward passes each, 3-5x that
# under ASan, through code their parser and metric tests (test_downstream.cpp) already cover sanitized.
# Nor does the out-of-tree plugin test: it checks packaging (install, find_package, an unsanitized plugin
# build), not memory safety, and its CLI commands run sanitized in the other tests.
SANITIZE_EXCLUDE=${SANITIZE_EXCLUDE-'sapling_tests_evaluation:(fitness on GB1|variant_effect on TEM-1|residue_classification: bind)|^out_of_tree_plugin$'} \
  bash scripts/sanitize.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh
echo "reliability job: $(( $(date +%s) - start )) s"
