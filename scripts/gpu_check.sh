#!/usr/bin/env bash
# GPU check (run on a CUDA machine with PyTorch): builds sapling against the CUDA LibTorch of the
# local PyTorch, then compares `sapling embed` on CUDA (fp32, bf16) with the CPU float32 path and
# with Hugging Face transformers (when installed), and times both. Dependencies other than
# LibTorch come from Debian .deb files unpacked into a prefix (folder .debs/, see README).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sapling-gpu}
mkdir -p "$OUT" /tmp/deps
for f in .debs/*.deb; do dpkg -x "$f" /tmp/deps; done
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
# The system's shared zlib (the .deb's static libz.a cannot go into a shared library).
rm -f /tmp/deps/usr/lib/x86_64-linux-gnu/libz.a
ZLIB_SO=$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')
echo "zlib: $ZLIB_SO"
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/gpu.txt"
# gemmi 0.5.7 headers need <cstdint> included first under g++ 13.
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;/tmp/deps/usr" \
  -DCMAKE_CXX_FLAGS="-include cstdint" -U 'ZLIB*' -DZLIB_INCLUDE_DIR=/tmp/deps/usr/include \
  -DZLIB_LIBRARY_RELEASE="$ZLIB_SO" -DZLIB_LIBRARY="$ZLIB_SO" > "$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
ninja -C build-cuda -j16 sapling sapling_plugin_esm2 sapling_plugin_amplify sapling_tests_esm2 sapling_tests_amplify \
  > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build ok"
# Parity suites of the sequence encoders against the fixtures, on this LibTorch (CPU path). The
# fixtures travel in gpu/shared (the tests look for ../shared beside the checkout).
[ -e ../shared ] || ln -s "$PWD/gpu/shared" ../shared
for s in ${GPU_TEST_SUITES-esm2 amplify}; do
  (cd build-cuda && timeout 120 tests/sapling_tests_$s "~[pretrained]~[timing]~[embed]~[sanity]~[loader]~[checkpoint]" > "$OUT/tests_$s.txt" 2>&1) || echo "suite $s exit $?"
  grep -E "scaled max diff|passed|failed" "$OUT/tests_$s.txt" | tail -12 || true
  grep -E "FAILED" -A10 "$OUT/tests_$s.txt" | head -40 || true
done
MODEL=datasets/models/esm2_t6_8M_uniprot_f16
FASTA=${GPU_FASTA:-gpu/embed_500.fasta}
for cfg in "cpu fp32" "cuda fp32" "cuda bf16"; do
  set -- $cfg
  /usr/bin/time -f "%e s wall, %M KB peak RSS" build-cuda/sapling embed --model $MODEL --fasta "$FASTA" \
    --out "$OUT/emb_$1_$2.safetensors" --include per_tok,mean,contacts --device $1 --dtype $2 --threads 16 2>&1 \
    | grep -v "^warning: sequence" | tee -a "$OUT/embed.txt"
done
python3 scripts/gpu_compare.py "$OUT" $MODEL "$FASTA" 2>&1 | tee "$OUT/compare.txt"
