#!/usr/bin/env bash
# Configures and builds sapling into build/ (Release, Ninja, ccache when present).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > build-configure.log 2>&1 || { cat build-configure.log; exit 1; }
# Which LibTorch, and whether the CUDA paths are compiled (one line; a CPU fallback says why).
sed -n 's/^-- sapling: /configure: /p' build-configure.log
SECONDS=0
ninja -C build -j"$(nproc)"
echo "build: $SECONDS s"
