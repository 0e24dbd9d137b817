#!/usr/bin/env bash
# Installs everything sapling needs on Debian 12 (build tools, LibTorch, Boost, TOML++, Gemmi, Catch2, OpenBLAS, gnuplot,
# and PyTorch for Python, which the golden loss test and the PyTorch comparisons run);
# with --sanitizers also clang-14 + libFuzzer for the sanitizer and fuzz jobs.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(
  cmake ninja-build g++ ccache pkg-config
  libtorch-dev libopenblas0-openmp libgloo-dev
  libboost-dev libboost-program-options-dev
  libtomlplusplus-dev nlohmann-json3-dev zlib1g-dev libssl-dev
  gemmi-dev tao-pegtl-dev
  catch2
  python3-numpy python3-torch
  gnuplot-nox
)
# --sanitizers: clang with libFuzzer and the sanitizer runtimes, for scripts/sanitize.sh and scripts/fuzz.sh (CI).
if [[ "${1:-}" == --sanitizers ]]; then
  PACKAGES+=(clang-14 libclang-rt-14-dev llvm-14)
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's LibTorch falls back to the reference BLAS (~30x slower) unless OpenBLAS is the alternative.
if ! update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q "^Value: .*openblas"; then
  echo "warning: libblas.so.3 does not point at OpenBLAS; matrix products will be slow" >&2
fi
