#!/usr/bin/env bash
# README command 2: install dependencies, build everything, run the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
build/sapling recipe check recipes
# One test per core, each on one intra-op thread (SAPLING_NUM_THREADS: the CLI's default; in-process tests
# start with one): side by side they keep both cores busy through the many tests that are mostly process
# start-up, file reading and single-threaded work, without OpenMP teams spinning against each other.
SAPLING_NUM_THREADS=${SAPLING_NUM_THREADS:-1} ctest --test-dir build --output-on-failure --timeout 1800 \
  --parallel "$(nproc)"
