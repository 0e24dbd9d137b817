#!/usr/bin/env bash
# README command 2: install dependencies, build everything, run the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
build/sapling recipe check recipes
# Tests run one at a time: each uses both cores through LibTorch's intra-op threads.
ctest --test-dir build --output-on-failure --timeout 1800
