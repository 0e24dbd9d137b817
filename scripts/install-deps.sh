#!/usr/bin/env bash
# Installs everything sapling needs on Debian 12: build tools and libraries from Debian's packages, and LibTorch
# from PyPI (the `torch` wheel, pinned below) in the project's own virtual environment `.venv/` (git ignores it).
# The same venv's Python runs the golden loss test and the PyTorch comparisons.
#   --sanitizers       also clang-14 + libFuzzer, and Debian's CPU LibTorch 1.13 that the sanitizer and fuzz
#                      build links (scripts/sanitized-build.sh; docs/reliability.md says why)
#   SAPLING_LIBTORCH=system   skip the wheel: build against Debian's LibTorch 1.13 (CPU only), the light option
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# The GPU machines sapling runs on have PyTorch 2.11 built for CUDA 13.0; PyPI's 2.11.0 wheel is that build.
TORCH_VERSION_PIN=${SAPLING_TORCH_VERSION:-2.11.0}
LIBTORCH=${SAPLING_LIBTORCH:-pypi}
PACKAGES=(
  cmake ninja-build g++ ccache pkg-config
  python3 python3-venv
  libboost-dev libboost-program-options-dev
  libtomlplusplus-dev nlohmann-json3-dev zlib1g-dev libssl-dev
  gemmi-dev tao-pegtl-dev
  catch2
  # Headers only, for c10d's ProcessGroupGloo.hpp: the torch wheel ships that header but not Gloo's own, and
  # no Gloo library is linked (Gloo's code is the copy inside libtorch_cpu). third_party/README.md.
  libgloo-dev
  gnuplot-nox
)
if [[ "$LIBTORCH" == system || "${1:-}" == --sanitizers ]]; then
  PACKAGES+=(libtorch-dev libopenblas0-openmp python3-numpy python3-torch)
fi
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
if [[ "$LIBTORCH" == system || "${1:-}" == --sanitizers ]]; then
  # Debian's LibTorch falls back to the reference BLAS (~30x slower) unless OpenBLAS is the alternative.
  if ! update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q "^Value: .*openblas"; then
    echo "warning: libblas.so.3 does not point at OpenBLAS; matrix products will be slow" >&2
  fi
fi
if [[ "$LIBTORCH" == pypi ]]; then
  # Debian's /usr/bin/python3 makes the venv (a python3 earlier on PATH, e.g. pyenv's, would tie it to that).
  PY=/usr/bin/python3
  [[ -x $PY ]] || PY=python3
  if [[ ! -x .venv/bin/python ]]; then
    echo "creating .venv (the project's virtual environment)"
    "$PY" -m venv .venv
  fi
  # Pinned: the wheel's LibTorch is what CMake builds against (cmake/SaplingTorch.cmake); numpy for the tests; the
  # libraries tests/interop loads sapling's outputs with (model folders, tokenizers, safetensors files, the hub
  # cache, fair-esm's ESM2, TensorBoard event files) and pytest that runs them. Distribution names, as
  # importlib.metadata knows them (fair-esm is imported as `esm`).
  want=("torch==$TORCH_VERSION_PIN" "numpy==2.2.6" "transformers==5.25.0" "tokenizers==0.23.3" "safetensors==0.8.0"
        "huggingface_hub==2.4.0" "fair-esm==2.0.0" "tensorboard==2.21.0" "pytest==9.2.0")
  if ! .venv/bin/python - "${want[@]}" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, pinned = spec.split("==")
    if version(name).split("+")[0] != pinned:
        sys.exit(1)
EOF
    echo "installing into .venv: ${want[*]} (the first time a 2.6 GB download: the torch wheel, its CUDA libraries)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${want[@]}"
  fi
fi
