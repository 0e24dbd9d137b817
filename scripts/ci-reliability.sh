#!/usr/bin/env bash
# CI's reliability job (.ci/run, after the test suite): a sanitized clang build (ASan + UBSan) of the core, the CLI,
# the plugins and three test suites runs every test of the core and of input parsing, then every fuzz target runs
# for FUZZ_SECONDS (default 20: six targets in the two minutes four had) on its seed corpus; any finding fails the
# job. The full sanitized suite (every test, about 30 min more) is `bash scripts/sanitize.sh`; docs/reliability.md
# says what each covers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --sanitizers
start=$(date +%s)
# What reads a user's input or holds the core's invariants, sanitized: structures, FASTA, safetensors, recipes,
# datasets, plugins, the hostile-input and fuzz-regression cases, masking, batching, checkpoints, optimiser,
# schedule and the fused CPU attention kernel's raw-pointer loops (sapling_tests); the checkpoint loaders' hostile cases (esm2); the downstream readers and metrics
# (evaluation). Training runs, benchmarks and parity runs are minutes of LibTorch under ASan for little
# sanitizer coverage beyond these; the normal job runs them all.
core_tags='[structure_io],[fasta],[safetensors],[recipe],[dataset],[plugins],[hostile],[fuzz],[masking],[batches],[checkpoint],[optimizer],[schedule],[attention]'
SANITIZE_TARGETS=${SANITIZE_TARGETS-"sapling sapling_tests sapling_tests_esm2 sapling_tests_evaluation"} \
SANITIZE_SUITES=${SANITIZE_SUITES-"sapling_tests=$core_tags sapling_tests_esm2=[hostile] sapling_tests_evaluation=[metrics],[hostile]"} \
  bash scripts/sanitize.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh
echo "reliability job: $(( $(date +%s) - start )) s"
