#!/usr/bin/env bash
# The GPU campaign (issues #18, #28): build, CUDA/CPU parity, the NCCL backend in a one-GPU world, MLM throughput beside
# PyTorch, the SaESM2 step per batching, a short science run and a dated summary, in one capped command.
#
# Usage:
#   MIRROR=../shared scripts/gpu_campaign.sh --stage here, with apt and a local build: fill gpu/ (ignored)
#                                                    with what travels to the GPU machine (.deb files; data.tar.xz:
#                                                    a BM5 subset prepared, its held-out unbound structures, PSICOV
#                                                    prepared, the MLM batch), check the size of the whole tree that
#                                                    travels, print `carry`
#   scripts/gpu_campaign.sh OUTDIR                   on a CUDA machine: every step, each under its own time cap
#   scripts/gpu_campaign.sh --cpu-rehearsal OUTDIR   every step on the CPU with tiny shapes and the repository's own
#                                                    sample, on an existing build (SAPLING_BUILD_DIR, default build/);
#                                                    nothing is configured or built (ctest gpu_campaign_rehearsal)
# Steps: 1 build, 2 parity, 2b nccl, 3 mlm, 4 saesm2, 4b prepare, 5 science, then the summary. A step that fails or runs out of
# time is recorded as such and the next one runs; the exit status is 0 only when every step passed. Everything a run
# writes is under OUTDIR: summary.md, steps.tsv, one folder per step (logs, JSON lines), campaign.tar.gz (all of it,
# for a tool that brings back only a few files). Trained weights stay in a scratch folder that is removed at the end.
# Environment knobs (defaults for the GPU run; the rehearsal sets its own small ones):
#   CAMPAIGN_SECONDS=540  wall-clock budget of the whole command; SUMMARY_RESERVE=15 kept for the summary
#   CAP_BUILD=240 CAP_PARITY=45 CAP_NCCL=40 CAP_MLM=90 CAP_SAESM2=90 CAP_PREPARE=75  per-step caps; the science step
#   gets what is left; PREPARE_ENTRIES=3000 (replicated sample files the pGNN throughput run prepares)
#   NCCL_STEPS=3 (optimiser steps of the one-GPU-world run)
#   MLM_SHAPES, MLM_BATCH=8, MLM_TOKENS=512, PEAK_TFLOPS=790 (H100/H200 dense bf16)
#   SAESM2_TRAINEE, SAESM2_REFERENCE (ESM2 presets), SAESM2_ARMS ("proteins tokens packed"; batching[:pack_row_tokens]),
#   SAESM2_STEPS=12; SCIENCE_ARM_SECONDS=120, SCIENCE_EVAL_RESERVE=60; BUILD_DIR=build-cuda; SAPLING_GPU_STAGE=gpu;
#   BUILD_TARGETS, PYTHON (the interpreter whose torch the build uses), SAPLING_CUDA=on (off: a CPU build against it),
#   TORCH_CMAKE_PREFIX (a LibTorch found by find_package instead: -DSAPLING_LIBTORCH=system), CAMPAIGN_KEEP_WORK=1
#   (keep the scratch)
# Staging knobs: BM5_TRAIN_COMPLEXES=60 (training complexes staged, "all" for every one; the held-out ones always
#   travel), STAGE_LIMIT_MIB=48, MIRROR, SAPLING_BUILD_DIR, SAPLING_DATA_DIR
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/scripts/gpu_campaign.sh
HELPER=$REPO/scripts/gpu_campaign.py
STAGE=${SAPLING_GPU_STAGE:-$REPO/gpu}
# The size the device tool accepts is 64 MiB for the whole tree. The staging of 2026-12-01 stopped at 60.0 MiB
# (checkout 25.1, gpu/ 34.9: all of BM5 prepared, 16.7 MiB); with a BM5 subset and the data compressed the tree is
# about 46 MiB, and 48 keeps the rest of the 64 for the checkout to grow.
STAGE_LIMIT_MIB=${STAGE_LIMIT_MIB:-48}
# Training complexes of BM5 that travel (prepared, 3Di tokens), the first ones in the order of the SHA-256 of their
# id; every held-out complex travels (validation, and the contact evaluation's unbound structures). "all": every one.
BM5_TRAIN_COMPLEXES=${BM5_TRAIN_COMPLEXES:-60}
# Debian 12 packages the build needs that the GPU machine lacks (no -dev packages there); LibTorch is its PyTorch's.
# libssl3 (libcrypto.so.3 itself, 2 MB) stays behind: the machine's Python needs it, so it is there. libgloo-dev
# (49 kB): Gloo's headers only, which the torch wheel does not ship (c10d's ProcessGroupGloo.hpp includes them); Gloo's
# code is the copy inside libtorch_cpu, and the .deb's library link is removed after unpacking. NCCL's header comes
# with the machine's torch (the nvidia-nccl wheel).
DEBS="libboost1.74-dev libboost-program-options1.74-dev libboost-program-options1.74.0 libtomlplusplus-dev
  libtomlplusplus3 nlohmann-json3-dev gemmi-dev tao-pegtl-dev zlib1g-dev libssl-dev libgloo-dev"
BASE_MODEL=$REPO/datasets/models/esm2_t6_8M_uniprot_f16
TINY_MODEL=$REPO/tests/fixtures/esm2_tiny
SAMPLE_FASTA=$REPO/datasets/sample/bm5_foldseek.aa.fasta
# The longest MLM crop the staged FASTA serves (MLM_TOKENS may be lower on the GPU machine, not higher).
MLM_TOKENS_MAX=${MLM_TOKENS_MAX:-512}

usage() { sed -n '4,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 2; }
die() { echo "error: $*" >&2; exit 1; }
now() { date +%s; }
# Seconds a command inside the current step may take: at most $1, and never past the step's own deadline.
cap() {
  local left=$(( STEP_DEADLINE - $(now) - 2 ))
  (( left < 1 )) && left=1
  (( $1 < left )) && echo "$1" || echo "$left"
}
# A part of a step failed: the step goes on with its other parts and reports failure at the end.
PART_FAILED=0
part_failed() { echo "FAILED: $*" >&2; echo "$*" >> "$STEP_OUT/failed.txt"; PART_FAILED=1; }
note() { echo "$*" >> "$STEP_OUT/note.txt"; }
helper() { "$PY" "$HELPER" "$@"; }

# An interpreter with numpy (the helper's tensor comparisons), preferably with torch too (the PyTorch arms): the
# checkout's .venv (scripts/install-deps.sh: PyPI's torch and numpy; it does not travel to the GPU machine), else the
# machine's python3 (on Debian, /usr/bin/python3 may have python3-torch while a python3 earlier on PATH may not).
pick_python() {
  local p
  for need in 'import numpy, torch, safetensors' 'import numpy, safetensors'; do
    for p in ${PYTHON:-} "$REPO/.venv/bin/python" python3 /usr/bin/python3; do
      command -v "$p" > /dev/null && "$p" -c "$need" 2> /dev/null && { echo "$p"; return; }
    done
  done
  echo python3
}

# Peak GPU memory of whatever runs meanwhile, sampled by nvidia-smi every 100 ms (device-wide: one process at a
# time here, so it is that process's context, weights, activations and allocator cache). No-op without a GPU.
SAMPLER_PID=
gpu_sampler_start() {
  rm -f "$1"
  if [[ $MODE == gpu ]] && command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$1" 2> /dev/null &
    SAMPLER_PID=$!
  fi
}
gpu_sampler_stop() {  # prints the peak in MiB, or nothing
  [[ -n $SAMPLER_PID ]] && { kill "$SAMPLER_PID" 2> /dev/null; wait "$SAMPLER_PID" 2> /dev/null; SAMPLER_PID=; }
  [[ -s $1 ]] && awk '$1 + 0 > m { m = $1 + 0 } END { if (NR) print m }' "$1"
}

# `sapling train` until N optimiser steps are in its metrics, then stopped: the timed steps are all that is wanted,
# and the end-of-run checkpoint and model folder of a 650M model (about 10 GB) would cost more than the steps.
# Leaves RUN_PEAK_RSS_MIB (host, from /proc) and RUN_PEAK_GPU_MIB. Usage: train_steps N SECONDS RUN LOG ARGS...
train_steps() {
  local n=$1 seconds=$2 run=$3 log=$4 pid done=0 rss deadline
  shift 4
  deadline=$(( $(now) + seconds ))
  gpu_sampler_start "$run.gpu"
  "$SAPLING" train "$@" --out "$run" --max-steps "$n" > "$log" 2>&1 &
  pid=$!
  RUN_PEAK_RSS_MIB=
  while kill -0 "$pid" 2> /dev/null; do
    rss=$(awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$pid/status" 2> /dev/null)
    [[ -n $rss ]] && RUN_PEAK_RSS_MIB=$rss
    if [[ -f $run/metrics.jsonl ]] && (( $(grep -c '"type":"train"' "$run/metrics.jsonl") >= n )); then
      done=1; kill "$pid" 2> /dev/null; break
    fi
    if (( $(now) >= deadline )); then kill "$pid" 2> /dev/null; break; fi
    sleep 0.2
  done
  wait "$pid" 2> /dev/null
  local rc=$?
  RUN_PEAK_GPU_MIB=$(gpu_sampler_stop "$run.gpu")
  (( done == 1 || rc == 0 ))
}

# The bundled sample as datasets: its BM5 structures (3Di tokens, 25% of complexes held out), the parity step's data
# and the rehearsal's stand-in for the staged BM5, whose held-out unbound files are the rehearsal's evaluation set;
# and its full PSICOV entries (high quality), the rehearsal's stand-in for the staged PSICOV of the reference model.
ensure_sample() {
  [[ -f $WORK/sample/index.json && -f $WORK/sample_psicov/index.json ]] && return 0
  "$SAPLING" prepare "$REPO/datasets/sample/bm5" --out "$WORK/sample" --tokenizer foldseek_3di --valid-fraction 0.25 \
    --seed 0 --split-by complex --quiet > "$WORK/sample.log" 2>&1 || { cat "$WORK/sample.log"; return 1; }
  mkdir -p "$WORK/sample_eval"
  held_out_unbound "$WORK/sample/index.json" | while read -r f; do cp "$f" "$WORK/sample_eval/"; done
  prepare_psicov "$SAPLING" "$REPO/datasets/sample/psicov" "$WORK/sample_psicov" --quiet > "$WORK/sample_psicov.log" 2>&1 \
    || { cat "$WORK/sample_psicov.log"; return 1; }
}

# prepare_psicov and held_out_unbound: the reproduction's data rules, as scripts/repro.sh applies them.
source "$REPO/scripts/repro_data.sh"

# ---------------------------------------------------------------------------------------------- 1. build

# What a build compiled in, from its build.ninja: "cuda" (SAPLING_WITH_CUDA), and the c10d backends that
# core/training/src/distributed.cpp has ("gloo", "nccl"; LibTorch's own USE_C10D_* flags say nothing about sapling's).
build_features() {
  [[ -f $1/build.ninja ]] || return 0
  awk '/src\/distributed\.cpp\.o:/ { f = 1; next } f && /DEFINES =/ {
      if ($0 ~ /-DSAPLING_WITH_CUDA( |$)/) printf "cuda "
      if ($0 ~ /-DSAPLING_HAVE_GLOO( |$)/) printf "gloo "
      if ($0 ~ /-DSAPLING_HAVE_NCCL( |$)/) printf "nccl "
      exit }' "$1/build.ninja" | sed 's/ $//'
}

step_build() {
  local features
  if [[ $MODE == rehearsal ]]; then
    # The rehearsal builds nothing: it checks that the build it is given has what the campaign runs.
    local f
    for f in sapling perf/sapling_perf_mlm_train plugins/sapling_esm2.so plugins/sapling_alignment.so \
      plugins/sapling_gearnet.so plugins/sapling_foldseek_3di.so plugins/sapling_evaluation.so; do
      [[ -e $BUILD_DIR/$f ]] || die "$BUILD_DIR/$f is missing (build first: ninja -C $BUILD_DIR)"
    done
    features=$(build_features "$BUILD_DIR")
    note "rehearsal: existing build $BUILD_DIR checked, nothing built (compiled in: ${features:-unknown})"
  else
    local deps=$BUILD_DIR/deps zlib crypto f torch_python torch_args what
    compgen -G "$STAGE/debs/*.deb" > /dev/null || die "no .deb files in $STAGE/debs: run scripts/gpu_campaign.sh --stage here and carry gpu"
    mkdir -p "$deps"
    for f in "$STAGE"/debs/*.deb; do dpkg -x "$f" "$deps" || die "dpkg -x $f"; done
    # The system's shared zlib: the .deb's static libz.a cannot go into a shared library.
    rm -f "$deps/usr/lib/x86_64-linux-gnu/libz.a"
    zlib=$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ { print $NF; exit }')
    # The system's libcrypto.so.3 behind the headers of libssl-dev (whose libcrypto.so points at it); the static
    # libcrypto.a would be linked into a shared library otherwise.
    crypto=$(ldconfig -p | awk '/libcrypto\.so\.3 .*x86-64/ { print $NF; exit }')
    [[ -n $crypto ]] || die "no libcrypto.so.3 on this machine (bring libssl3's .deb)"
    rm -f "$deps/usr/lib/x86_64-linux-gnu/libcrypto.a" "$deps/usr/lib/x86_64-linux-gnu/libssl.a"
    # Gloo: headers only. libgloo-dev's libgloo.so link (to libgloo0, which does not travel) and CMake package go, so
    # that nothing can link Debian's Gloo beside the copy inside libtorch_cpu.
    rm -rf "$deps/usr/lib/libgloo.so" "$deps/usr/share/cmake/Gloo"
    if [[ -n ${TORCH_CMAKE_PREFIX:-} ]]; then
      # An override: a LibTorch that find_package(Torch) finds under the given prefix (cmake/SaplingTorch.cmake, system).
      torch_args=(-DSAPLING_LIBTORCH=system -DCMAKE_PREFIX_PATH="$TORCH_CMAKE_PREFIX;$deps/usr")
      what="find_package(Torch) under TORCH_CMAKE_PREFIX=$TORCH_CMAKE_PREFIX"
    else
      # As CI builds against PyPI's torch: cmake/SaplingTorch.cmake asks this Python for torch.utils.cmake_prefix_path,
      # the wheel's version and CUDA, and its site-packages (nvidia/nccl/include for nccl.h).
      torch_python=$("$PY" -c 'import sys, torch; print(sys.executable)' 2> /dev/null) \
        || die "$PY cannot import torch (PYTHON=/path/to/python with the machine's torch, or TORCH_CMAKE_PREFIX=...)"
      torch_args=(-DSAPLING_LIBTORCH=pypi -DSAPLING_PYTHON="$torch_python" -DCMAKE_PREFIX_PATH="$deps/usr")
      what="pypi: $torch_python, torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2> /dev/null)"
    fi
    echo "zlib $zlib; libcrypto $crypto; LibTorch $what; reusing $BUILD_DIR: $([[ -f $BUILD_DIR/CMakeCache.txt ]] && echo yes || echo no)"
    # gemmi 0.5.7's headers use std::uint*_t without <cstdint>, which g++ 13 no longer pulls in transitively.
    cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAPLING_BUILD_TESTS=OFF \
      "${torch_args[@]}" -DSAPLING_CUDA="${SAPLING_CUDA:-on}" \
      -DCMAKE_CXX_FLAGS="-include cstdint" -DOPENSSL_ROOT_DIR="$deps/usr" \
      -DOPENSSL_INCLUDE_DIR="$deps/usr/include" -DOPENSSL_CRYPTO_LIBRARY="$crypto" \
      -U 'ZLIB*' -DZLIB_INCLUDE_DIR="$deps/usr/include" -DZLIB_LIBRARY_RELEASE="$zlib" -DZLIB_LIBRARY="$zlib" \
      > "$STEP_OUT/configure.log" 2>&1 || { tail -40 "$STEP_OUT/configure.log"; die "cmake configure failed"; }
    grep -E '^-- sapling:|Gloo headers not found|nccl.h not found' "$STEP_OUT/configure.log"
    # Only what the campaign runs: no tests, no AMPLIFY, no template.
    ninja -C "$BUILD_DIR" -j "$(nproc)" ${BUILD_TARGETS:-sapling sapling_plugin_esm2 sapling_plugin_alignment \
      sapling_plugin_gearnet sapling_plugin_foldseek_3di sapling_plugin_evaluation sapling_perf_mlm_train} > "$STEP_OUT/build.log" 2>&1 \
      || { grep -E "error|Error" -A3 "$STEP_OUT/build.log" | head -60; die "build failed"; }
    features=$(build_features "$BUILD_DIR")
    note "built $BUILD_DIR ($(grep -c '^\[' "$STEP_OUT/build.log") ninja steps; LibTorch $what; compiled in: ${features:-unknown})"
    # The CUDA build must have both data-parallel backends: NCCL for the GPUs, Gloo for CPU runs of the same binary.
    local need="cuda gloo nccl"
    [[ ${SAPLING_CUDA:-on} == off ]] && need=gloo
    for f in $need; do
      [[ " $features " == *" $f "* ]] || part_failed "the build has no $f (configure.log: $(grep -m1 -iE "$f.*(not found|no )" "$STEP_OUT/configure.log" | cut -c1-120))"
    done
  fi
  "$SAPLING" --help > /dev/null || die "$SAPLING does not run"
  "$SAPLING" plugins list > "$STEP_OUT/plugins.txt" 2>&1 || die "sapling plugins list failed"
  return $PART_FAILED
}

# What the summary names: machine, GPU, driver, LibTorch, compiler, commit. Runs whatever the build step did.
record_versions() {
  local v=$OUTDIR/versions.txt commit dirty=""
  {
    echo "date=$(date -u +%Y-%m-%d)"
    echo "time=$(date -u +%H:%M:%SZ)"
    echo "mode=$MODE"
    echo "cpu=$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2> /dev/null | cut -d: -f2 | xargs)"
    if command -v nvidia-smi > /dev/null; then
      echo "gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2> /dev/null | head -1)"
      echo "driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2> /dev/null | head -1)"
    fi
    echo "python_torch=$("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2> /dev/null || echo none)"
    if [[ -f $BUILD_DIR/CMakeCache.txt ]]; then
      echo "libtorch=$(sed -n 's/^Torch_DIR:PATH=//p' "$BUILD_DIR/CMakeCache.txt")"
      echo "libtorch_route=$(sed -n 's/^SAPLING_LIBTORCH:STRING=//p' "$BUILD_DIR/CMakeCache.txt")"
      echo "sapling_python=$(sed -n 's/^SAPLING_PYTHON:FILEPATH=//p' "$BUILD_DIR/CMakeCache.txt")"
      echo "cxx=$("$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")" --version 2> /dev/null | head -1)"
    fi
    echo "libtorch_version=$(grep -o -m1 'LibTorch [0-9][0-9a-z.+]*' "$OUTDIR/build/plugins.txt" 2> /dev/null | cut -d' ' -f2)"
    echo "build_features=$(build_features "$BUILD_DIR")"
    # What --stage packed: the BM5 subset and its sizes (the GPU run only; the rehearsal uses the sample).
    [[ $MODE == gpu && -f $STAGE/stage.txt ]] && grep -v '^commit=' "$STAGE/stage.txt" | sed 's/^/stage_/'
    if commit=$(git -C "$REPO" rev-parse --short HEAD 2> /dev/null); then
      [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2> /dev/null) ]] && dirty=" (uncommitted changes)"
      echo "commit=$commit$dirty"
    elif [[ -f $STAGE/stage.txt ]]; then
      # The device tool sends the files without .git: the commit is the one recorded when staging.
      echo "commit=$(sed -n 's/^commit=//p' "$STAGE/stage.txt") (as staged; no .git here)"
    fi
  } > "$v"
}

# ---------------------------------------------------------------------------------------------- 2. parity

# Embeddings of the sample's sequences: the tiny fixture and the bundled 8M on the CPU (float32) and on $DEVICE
# (float32, and bf16 autocast on CUDA); then the first micro-batch of a three-loss step with selection (losses,
# intermediates) and one optimiser step (loss, gradient norm, updated weights), CPU against $DEVICE, float32.
step_parity() {
  local d=$WORK/parity out=$STEP_OUT/results.jsonl model fasta=$SAMPLE_FASTA
  mkdir -p "$d"
  ensure_sample || die "sapling prepare of the sample failed"
  if (( PARITY_SEQUENCES > 0 )); then  # the rehearsal: a few sequences are enough to exercise the comparison
    fasta=$d/sequences.fasta
    awk -v n="$PARITY_SEQUENCES" '/^>/ { k++ } k <= n' "$SAMPLE_FASTA" > "$fasta"
  fi
  embed() {  # MODEL NAME DEVICE DTYPE
    timeout "$(cap 60)" "$SAPLING" embed --model "$1" --fasta "$fasta" --out "$d/emb_$2_$3_$4.safetensors" \
      --include per_tok,mean,contacts --device "$3" --dtype "$4" --quiet > "$d/emb_$2_$3_$4.log" 2>&1 \
      || { cat "$d/emb_$2_$3_$4.log"; part_failed "embed $2 on $3 $4"; }
  }
  for model in tiny:$TINY_MODEL base:$BASE_MODEL; do
    embed "${model#*:}" "${model%%:*}" cpu float32
    embed "${model#*:}" "${model%%:*}" "$DEVICE" float32
    helper compare "$d/emb_${model%%:*}_cpu_float32.safetensors" "$d/emb_${model%%:*}_${DEVICE}_float32.safetensors" \
      --label "embed ${model%%:*}: $DEVICE float32 vs cpu float32" --tolerance 1e-4 --out "$out" || part_failed "embed ${model%%:*} $DEVICE float32"
  done
  if [[ $DEVICE == cuda ]]; then
    embed "$BASE_MODEL" base cuda bf16
    helper compare "$d/emb_base_cpu_float32.safetensors" "$d/emb_base_cuda_bf16.safetensors" \
      --label "embed base: cuda bf16 autocast vs cpu float32" --tolerance 5e-2 --out "$out" || part_failed "embed base cuda bf16"
  fi
  # The independent implementation: Hugging Face transformers' EsmModel on the same weights, where installed.
  if "$PY" -c 'import torch, transformers' 2> /dev/null; then
    timeout "$(cap 60)" "$PY" "$HELPER" compare-transformers "$d/emb_base_cpu_float32.safetensors" "$BASE_MODEL" \
      "$fasta" --out "$out" || part_failed "embed base: sapling vs transformers"
  else
    note "no comparison with transformers: not installed for $PY"
  fi
  # quickstart.toml: three losses, excess-loss selection, the bundled GearNet; the tiny fixture as trainee, and as
  # reference one CPU step of it without selection (selection needs a run's folder: model + loss heads).
  local sets=(--set "model.path=$TINY_MODEL" --set "data.dataset=$WORK/sample" --set 'data.valid_split=""'
    --set train.precision=fp32 --set train.checkpoint_every=0)
  printf 'base = "%s"\n[selector]\ncomponent = "none"\n' "$REPO/recipes/quickstart.toml" > "$d/reference.toml"
  timeout "$(cap 60)" "$SAPLING" train "$d/reference.toml" "${sets[@]}" --set "reference_model.path=$TINY_MODEL" \
    --set train.device=cpu --max-steps 1 --out "$d/reference" > "$d/reference.log" 2>&1 \
    || { cat "$d/reference.log"; die "the reference run (one CPU step) failed"; }
  sets+=(--set "reference_model.path=$d/reference/final")
  # "ref" on the CPU, "test" on $DEVICE (in the rehearsal the CPU again: the plumbing and determinism).
  local run tag dev
  for run in "ref:cpu" "test:$DEVICE"; do
    tag=${run%%:*} dev=${run#*:}
    timeout "$(cap 60)" "$SAPLING" train "$REPO/recipes/quickstart.toml" "${sets[@]}" --set "train.device=$dev" \
      --inspect-batch "$d/inspect_$tag.safetensors" > "$d/inspect_$tag.log" 2>&1 || { cat "$d/inspect_$tag.log"; part_failed "inspect-batch on $dev"; }
    timeout "$(cap 60)" "$SAPLING" train "$REPO/recipes/quickstart.toml" "${sets[@]}" --set "train.device=$dev" \
      --max-steps 1 --out "$d/train_$tag" > "$d/train_$tag.log" 2>&1 || { cat "$d/train_$tag.log"; part_failed "train step on $dev"; }
  done
  helper compare "$d/inspect_ref.safetensors" "$d/inspect_test.safetensors" --tolerance 1e-3 --out "$out" \
    --label "first micro-batch (inputs, losses, selection): $DEVICE vs cpu, float32" || part_failed "inspect-batch $DEVICE vs cpu"
  helper compare-metrics "$d/train_ref/metrics.jsonl" "$d/train_test/metrics.jsonl" --tolerance 1e-4 --out "$out" \
    --label "one optimiser step, loss and gradient norm: $DEVICE vs cpu, float32" || part_failed "train step metrics $DEVICE vs cpu"
  helper compare "$d/train_ref/final/model.safetensors" "$d/train_test/final/model.safetensors" --tolerance 1e-3 --out "$out" \
    --label "weights after one AdamW step: $DEVICE vs cpu, float32" || part_failed "weights after one step $DEVICE vs cpu"
  return $PART_FAILED
}

# ---------------------------------------------------------------------------------------------- 2b. nccl

# [train] backend in a one-process world launched as torchrun launches (WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR
# MASTER_PORT): on CUDA `backend = "nccl"` with `device = "cuda"`, which must resolve to cuda:LOCAL_RANK = cuda:0; in
# the rehearsal the same run with Gloo on the CPU. A few optimiser steps of the tiny fixture on the sample, with
# [train] global_batch = 2 x proteins_per_batch so that the per-process accumulation is derived from WORLD_SIZE (2).
# With WORLD_SIZE=1 the trainer makes no process group (every collective is a no-op), so this checks the backend's
# resolution, the device choice and the launch plumbing, not NCCL's collectives: those need 2 or more GPUs (NCCL
# refuses two ranks on one device), tests/test_train_cli.cpp's [nccl] test. Then the refusals, which must fail at
# once and name the setting: NCCL on the CPU, and (on CUDA) a LOCAL_RANK beyond the machine's GPUs.
step_nccl() {
  local d=$WORK/nccl out=$STEP_OUT/results.jsonl backend=gloo device=cpu expect_device=cpu port rc gpus
  [[ $DEVICE == cuda ]] && backend=nccl device=cuda expect_device=cuda:0
  mkdir -p "$d"
  ensure_sample || die "sapling prepare of the sample failed"
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2> /dev/null) \
    || port=$(( 29500 + RANDOM % 2000 ))
  # Masked LM only, on its own (no base recipe): the launch is what is checked, and the step batch comes from
  # global_batch alone (a base recipe's explicit accumulate would conflict with it).
  cat > "$d/recipe.toml" <<TOML
# Written by scripts/gpu_campaign.sh (step 2b): the tiny fixture, masked LM, 2 proteins per micro-batch, 4 per step.
[model]
component = "esm2"
path = "$TINY_MODEL"

[losses.mlm]
component = "mlm"
weight = 1.0

[data]
dataset = "$WORK/sample"
valid_split = ""
batching = "proteins"
proteins_per_batch = 2
max_length = 64

[train]
global_batch = 4
precision = "fp32"
checkpoint_every = 0
seed = 0
distributed_timeout = 30
TOML
  cp "$d/recipe.toml" "$STEP_OUT/recipe.toml"
  WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout "$(cap 60)" "$SAPLING" train \
    "$d/recipe.toml" --set "train.device=$device" --set "train.backend=$backend" --max-steps "$NCCL_STEPS" \
    --out "$d/run" > "$STEP_OUT/train_world1.log" 2>&1
  rc=$?
  cat "$STEP_OUT/train_world1.log"
  helper launch-check "$STEP_OUT/train_world1.log" --metrics "$d/run/metrics.jsonl" --rc "$rc" --out "$out" \
    --label "WORLD_SIZE=1, backend $backend, device $device" --expect-backend "$backend" \
    --expect-device "$expect_device" --expect-processes 1 --expect-accumulate 2 --expect-steps "$NCCL_STEPS" \
    --set world_size=1 "master_port=$port" || part_failed "one-process world with $backend"
  [[ -f $d/run/metrics.jsonl ]] && cp "$d/run/metrics.jsonl" "$STEP_OUT/metrics_world1.jsonl"
  # Refusals: the trainer refuses these at start-up, before it trains.
  WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout "$(cap 30)" "$SAPLING" train \
    "$d/recipe.toml" --set train.device=cpu --set train.backend=nccl --max-steps 1 --out "$d/refused_cpu" \
    > "$STEP_OUT/refuse_nccl_on_cpu.log" 2>&1
  helper refusal-check "$STEP_OUT/refuse_nccl_on_cpu.log" --rc $? --out "$out" --label "backend nccl on the CPU" \
    --expect 'nccl.*CUDA' || part_failed "backend nccl on the CPU was not refused by name"
  if [[ $DEVICE == cuda ]]; then
    # One rank past the last GPU: RANK = LOCAL_RANK = the GPU count in a world one larger. process_device() refuses
    # it before the process group is made, so no peer is waited for.
    gpus=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2> /dev/null || nvidia-smi -L 2> /dev/null | grep -c '^GPU')
    [[ $gpus =~ ^[1-9][0-9]*$ ]] || gpus=1
    WORLD_SIZE=$(( gpus + 1 )) RANK=$gpus LOCAL_RANK=$gpus MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout "$(cap 30)" \
      "$SAPLING" train "$d/recipe.toml" --set train.device=cuda --set train.backend=nccl --max-steps 1 \
      --out "$d/refused_rank" > "$STEP_OUT/refuse_local_rank.log" 2>&1
    helper refusal-check "$STEP_OUT/refuse_local_rank.log" --rc $? --out "$out" \
      --label "LOCAL_RANK=$gpus on a machine with $gpus GPU(s)" --expect "LOCAL_RANK=$gpus\\b" \
      || part_failed "LOCAL_RANK beyond the GPUs was not refused by name"
  fi
  note "WORLD_SIZE=1 checks the backend resolution and device choice, not collectives (tests/test_train_cli.cpp [nccl], 2+ GPUs)"
  rm -rf "$d"
  return $PART_FAILED
}

# ---------------------------------------------------------------------------------------------- 3. mlm

# sapling_perf_mlm_train and perf/torch_esm2.py (this repository's ESM2 in plain PyTorch; transformers'
# EsmForMaskedLM too where installed) on the same batch shape, one after the other, per model size.
step_mlm() {
  local out=$STEP_OUT/results.jsonl shape peak impl have_torch=1 have_transformers=1 dtype=float32 attention=manual
  [[ $DEVICE == cuda ]] && dtype=bf16 attention=sdpa
  "$PY" -c 'import torch' 2> /dev/null || have_torch=0
  "$PY" -c 'import transformers' 2> /dev/null || have_transformers=0
  if (( ! have_torch )) && [[ $MODE == gpu ]]; then
    part_failed "$PY has no torch: no PyTorch side"
  elif (( ! have_torch )); then
    note "PyTorch side skipped: $PY has no torch"
  fi
  (( have_transformers )) || note "transformers arm skipped: not installed for $PY"
  for shape in $MLM_SHAPES; do
    gpu_sampler_start "$STEP_OUT/gpu.samples"
    timeout "$(cap 120)" "$BUILD_DIR/perf/sapling_perf_mlm_train" --preset "$shape" --fasta "$MLM_FASTA" \
      --batch "$MLM_BATCH" --tokens "$MLM_TOKENS" --device "$DEVICE" --dtype "$dtype" --peak-tflops "$PEAK_TFLOPS" \
      --warmup "$MLM_WARMUP" --steps "$MLM_STEPS" --threads "$THREADS" > "$STEP_OUT/sapling_$shape.log" 2>&1
    local rc=$?
    peak=$(gpu_sampler_stop "$STEP_OUT/gpu.samples")
    cat "$STEP_OUT/sapling_$shape.log"
    if (( rc == 0 )); then
      helper bench-log "$STEP_OUT/sapling_$shape.log" --out "$out" --set impl=sapling model="$shape" dtype="$dtype" \
        device="$DEVICE" peak_gpu_mib="$peak" || part_failed "sapling $shape: unreadable output"
    else
      part_failed "sapling $shape (exit $rc)"
    fi
    (( have_torch )) || continue
    for impl in esm2 transformers; do
      [[ $impl == transformers ]] && (( ! have_transformers )) && continue
      gpu_sampler_start "$STEP_OUT/gpu.samples"
      timeout "$(cap 120)" "$PY" "$REPO/perf/torch_esm2.py" --mode train --impl "$impl" --preset "$shape" \
        --fasta "$MLM_FASTA" --batch "$MLM_BATCH" --tokens "$MLM_TOKENS" --device "$DEVICE" --dtype "$dtype" \
        --attention "$attention" --peak-tflops "$PEAK_TFLOPS" --warmup "$MLM_WARMUP" --steps "$MLM_STEPS" \
        --threads "$THREADS" --json "$STEP_OUT/torch.jsonl" > "$STEP_OUT/torch_${impl}_$shape.log" 2>&1
      rc=$?
      peak=$(gpu_sampler_stop "$STEP_OUT/gpu.samples")
      cat "$STEP_OUT/torch_${impl}_$shape.log"
      if (( rc == 0 )); then
        tail -1 "$STEP_OUT/torch.jsonl" | helper add-fields --out "$out" --set "impl=torch_$impl" peak_gpu_mib="$peak"
      else
        part_failed "PyTorch $impl $shape (exit $rc)"
      fi
    done
  done
  return $PART_FAILED
}

# ---------------------------------------------------------------------------------------------- 4. saesm2

# The full SaESM2 step as recipes/method.toml sets it (three losses, excess-loss selection, published loss
# normalisation, bf16 autocast on CUDA), with a randomly initialised trainee and reference of the given sizes and a
# randomly initialised GearNet-Edge (6 x 512, last layer, computed per chain as the published code does), one
# micro-batch per optimiser step, on the staged BM5 training chains; one run per batching, same seed.
step_saesm2() {
  local out=$STEP_OUT/results.jsonl arm batching rows run
  [[ $MODE == rehearsal ]] && { ensure_sample || die "sapling prepare of the sample failed"; }
  # method.toml names the published pGNN weights, which do not travel; without `weights` GearNet is random.
  sed '/^weights *=/d' "$REPO/recipes/method.toml" > "$WORK/saesm2_base.toml"
  # Selection needs a reference run's folder (model + the heads of its losses): one optimiser step of the reference
  # size with the same losses and no selection makes one.
  cat > "$WORK/saesm2_reference.toml" <<TOML
# Written by scripts/gpu_campaign.sh: the reference of the SaESM2 step, a randomly initialised $SAESM2_REFERENCE.
base = "saesm2_base.toml"
[model]
component = "esm2"
preset = "$SAESM2_REFERENCE"
[selector]
component = "none"
TOML
  cat > "$WORK/saesm2.toml" <<TOML
# Written by scripts/gpu_campaign.sh: method.toml with a randomly initialised $SAESM2_TRAINEE (throughput only).
base = "saesm2_base.toml"
[model]
component = "esm2"
preset = "$SAESM2_TRAINEE"
[reference_model]
component = "esm2"
path = "$RUNS/saesm2_reference/final"
TOML
  # One micro-batch per optimiser step: accumulate 1, and no global_batch (method.toml's published 5120 proteins).
  local sets=(--set "data.dataset=$BM5" --set 'data.valid_split=""' --set train.accumulate=1 --set train.global_batch=0
    --set train.save_best=false --set train.checkpoint_every=0 --set train.keep_checkpoints=1 --set train.seed=0
    --set data.proteins_per_batch=8 --set data.tokens_per_batch=4096 --set optim.warmup_steps=0)
  [[ -n ${SAESM2_PGNN_DIMS:-} ]] && sets+=(--set "pgnn.hidden_dims=$SAESM2_PGNN_DIMS")
  [[ $DEVICE == cpu ]] && sets+=(--set train.device=cpu)
  local extra
  read -r -a extra <<< "$SAESM2_EXTRA_SETS"
  sets+=("${extra[@]}")
  cp "$WORK/saesm2_base.toml" "$WORK/saesm2_reference.toml" "$WORK/saesm2.toml" "$STEP_OUT/"
  printf '%q ' "${sets[@]}" > "$STEP_OUT/overrides.txt"
  timeout "$(cap 60)" "$SAPLING" train "$WORK/saesm2_reference.toml" "${sets[@]}" --max-steps 1 --out "$RUNS/saesm2_reference" \
    > "$STEP_OUT/reference.log" 2>&1 || { tail -20 "$STEP_OUT/reference.log"; die "the reference run failed"; }
  rm -rf "$RUNS/saesm2_reference/checkpoints"
  for arm in $SAESM2_ARMS; do
    batching=${arm%%:*} rows=0
    [[ $arm == *:* ]] && rows=${arm#*:}
    run=$RUNS/saesm2_${arm/:/_}
    rm -rf "$run"
    if train_steps "$SAESM2_STEPS" "$(cap 150)" "$run" "$STEP_OUT/train_${arm/:/_}.log" "$WORK/saesm2.toml" "${sets[@]}" \
      --set "data.batching=$batching" --set "data.pack_row_tokens=$rows"; then
      helper train-metrics "$run/metrics.jsonl" --skip "$SAESM2_SKIP" --out "$out" --set "batching=$arm" \
        peak_gpu_mib="$RUN_PEAK_GPU_MIB" peak_rss_mib="$RUN_PEAK_RSS_MIB" || part_failed "batching $arm: no step timed"
    else
      tail -20 "$STEP_OUT/train_${arm/:/_}.log"
      part_failed "batching $arm: sapling train failed or timed out"
      helper add-fields --out "$out" --set "batching=$arm" \
        "error=$(grep -m1 -i 'error' "$STEP_OUT/train_${arm/:/_}.log" | cut -c1-160 | tr '|' '/')" < /dev/null
    fi
    rm -rf "$run"  # checkpoints of large models: do not let them fill the disk
  done
  rm -rf "$RUNS/saesm2_reference"
  return $PART_FAILED
}

# ---------------------------------------------------------------------------------------------- 4b. prepare

# `sapling prepare --pgnn gearnet --device cuda` (issue #31, docs/scale.md): the bundled GearNet-Edge (6 x 128) on the
# repository's sample on the device and on the CPU (the stored float16 rows must agree to float16 rounding), then the
# published shape (6 x 512, random weights, last layer stored) on replicated sample structures, for its residues/s.
step_prepare() {
  local out=$STEP_OUT/results.jsonl dev=$WORK/prepare_$DEVICE line residues seconds files wall
  local common=(prepare "$REPO/datasets/sample/bm5" "$REPO/datasets/sample/psicov" --tokenizer foldseek_3di --pgnn gearnet
    --pgnn-weights "$REPO/datasets/models/gearnet_edge_mc_6x128.safetensors" --threads "$THREADS" --quiet)
  rm -rf "$WORK/prepare_cpu" "$dev"
  timeout "$(cap 60)" "$SAPLING" "${common[@]}" --out "$WORK/prepare_cpu" > "$STEP_OUT/cpu.log" 2>&1 \
    || { tail -5 "$STEP_OUT/cpu.log"; die "prepare on the CPU failed"; }
  if [[ $DEVICE != cpu ]]; then
    timeout "$(cap 60)" "$SAPLING" "${common[@]}" --out "$dev" --device "$DEVICE" > "$STEP_OUT/device.log" 2>&1 \
      || { tail -5 "$STEP_OUT/device.log"; die "prepare --device $DEVICE failed"; }
    helper compare "$WORK/prepare_cpu/shard-00000.safetensors" "$dev/shard-00000.safetensors" --tolerance 4e-3 \
      --label "prepare, GearNet-Edge 6x128 rows: $DEVICE against cpu" --out "$out" || part_failed "prepare rows differ"
  fi
  rm -rf "$WORK/prepare_in" "$WORK/prepare_512"
  "$PY" "$REPO/perf/replicate_structures.py" --out "$WORK/prepare_in" --entries "$PREPARE_ENTRIES" \
    "$REPO/datasets/sample/bm5" "$REPO/datasets/sample/psicov" 2> "$STEP_OUT/replicate.log" || die "replicating the sample failed"
  local pgnn=(--set pgnn.output=last)
  [[ -n $PREPARE_PGNN_DIMS ]] && pgnn+=(--set "pgnn.hidden_dims=$PREPARE_PGNN_DIMS")
  if timeout "$(cap 120)" "$SAPLING" prepare "$WORK/prepare_in" --out "$WORK/prepare_512" --tokenizer foldseek_3di \
    --pgnn gearnet --allow-random-pgnn "${pgnn[@]}" --device "$DEVICE" --threads "$THREADS" > "$STEP_OUT/throughput.log" 2>&1; then
    # "pGNN gearnet: R residues embedded (dim D, float16) in S s" and "this run F files in W s"
    line=$(grep -m1 'residues embedded' "$STEP_OUT/throughput.log")
    residues=$(sed -n 's/.*: \([0-9]*\) residues embedded.*/\1/p' <<< "$line")
    seconds=$(sed -n 's/.* in \([0-9.]*\) s$/\1/p' <<< "$line")
    read -r files wall < <(sed -n 's/.*this run \([0-9]*\) files in \([0-9.]*\) s.*/\1 \2/p' "$STEP_OUT/throughput.log")
    helper add-fields --out "$out" --set "label=prepare, GearNet-Edge ${PREPARE_PGNN_DIMS:-6x512} (last layer), $DEVICE" \
      "residues=$residues" "embed_seconds=$seconds" "files=$files" "wall_seconds=$wall" \
      "residues_per_s=$(awk -v r="$residues" -v s="$wall" 'BEGIN { if (s > 0) printf "%.0f", r / s }')" < /dev/null
  else
    tail -5 "$STEP_OUT/throughput.log"
    part_failed "prepare throughput run failed or timed out"
  fi
  rm -rf "$WORK/prepare_cpu" "$dev" "$WORK/prepare_in" "$WORK/prepare_512"
  return $PART_FAILED
}

# ---------------------------------------------------------------------------------------------- 5. science

# docs/results.md's reproduction at GPU scale: the bundled 8M-shaped ESM2 aligned with the full method and, as the
# control, with MLM only, on the same residues (recipes/repro/esm2_full.toml and esm2_mlm_only.toml: same steps,
# seed and batching), after their reference model (recipes/repro/esm2_reference.toml: PSICOV high-quality chains, 120
# steps); then contact_unsupervised and contact_probe on the held-out BM5 unbound chains for the base and both arms.
# Steps per arm: as many as the time left allows, from the reference run's step time (x 1.3 for the reference
# forward that selection adds), the same for both arms.
step_science() {
  local out=$STEP_OUT/results.jsonl steps=$SCIENCE_STEPS arm task model reference t0
  [[ $MODE == rehearsal ]] && { ensure_sample || die "sapling prepare of the sample failed"; }
  local sets=(--set "model.path=$BASE_MODEL" --set train.checkpoint_every=0 --set train.seed=0) extra
  [[ $DEVICE == cpu ]] && sets+=(--set train.device=cpu)
  read -r -a extra <<< "$SCIENCE_EXTRA_SETS"
  sets+=("${extra[@]}")
  t0=$(now)
  timeout "$(cap 150)" "$SAPLING" train "$REPO/recipes/repro/esm2_reference.toml" "${sets[@]}" --set "data.dataset=$PSICOV" \
    $SCIENCE_REFERENCE_OPTIONS --out "$WORK/science_reference" > "$STEP_OUT/train_reference.log" 2>&1 \
    || { tail -20 "$STEP_OUT/train_reference.log"; die "training the reference failed"; }
  reference=$WORK/science_reference/best
  [[ -d $reference ]] || reference=$WORK/science_reference/final  # no validation chains: the last weights
  mkdir -p "$STEP_OUT/reference"
  cp "$WORK/science_reference/metrics.jsonl" "$WORK/science_reference/summary.json" "$STEP_OUT/reference/"
  helper train-metrics "$WORK/science_reference/metrics.jsonl" --summary "$WORK/science_reference/summary.json" \
    --out "$out" --set kind=train arm=reference wall_s=$(( $(now) - t0 )) || part_failed "reference: no metrics"
  if [[ $steps == auto ]]; then
    local per_step startup budget
    per_step=$(helper seconds-per-step "$WORK/science_reference/metrics.jsonl") || die "no step timing in the reference run"
    startup=$(awk -v w=$(( $(now) - t0 )) -v s="$per_step" -v n="$(grep -c '"type":"train"' "$WORK/science_reference/metrics.jsonl")" \
      'BEGIN { x = w - s * n; print (x < 5 ? 5 : int(x)) }')
    budget=$(( (STEP_DEADLINE - $(now) - SCIENCE_EVAL_RESERVE) / 2 ))
    (( budget > SCIENCE_ARM_SECONDS )) && budget=$SCIENCE_ARM_SECONDS
    steps=$(awk -v b="$budget" -v u="$startup" -v s="$per_step" 'BEGIN { n = int(0.85 * (b - u) / (1.3 * s)); print (n < 10 ? 10 : n) }')
    note "reference: ${per_step} s per step, ~${startup} s start-up and validation; ${budget} s per arm -> $steps steps each"
  fi
  local full=("$REPO/recipes/repro/esm2_full.toml" --set "reference_model.path=$reference")
  local mlm=("$REPO/recipes/repro/esm2_mlm_only.toml")
  for arm in full mlm_only; do
    local recipe=("${full[@]}")
    [[ $arm == mlm_only ]] && recipe=("${mlm[@]}")
    t0=$(now)
    if timeout "$(cap 400)" "$SAPLING" train "${recipe[@]}" "${sets[@]}" --set "data.dataset=$BM5" --max-steps "$steps" \
      --out "$WORK/science_$arm" > "$STEP_OUT/train_$arm.log" 2>&1; then
      mkdir -p "$STEP_OUT/$arm"
      cp "$WORK/science_$arm/metrics.jsonl" "$WORK/science_$arm/summary.json" "$WORK/science_$arm/recipe.toml" "$STEP_OUT/$arm/"
      helper train-metrics "$WORK/science_$arm/metrics.jsonl" --summary "$WORK/science_$arm/summary.json" \
        --out "$out" --set kind=train "arm=$arm" wall_s=$(( $(now) - t0 )) || part_failed "$arm: no metrics"
    else
      tail -20 "$STEP_OUT/train_$arm.log"
      part_failed "training $arm"
    fi
  done
  for arm in $SCIENCE_EVAL_ARMS; do
    model=$BASE_MODEL
    [[ $arm != base ]] && model=$WORK/science_$arm/final
    [[ -d $model ]] || continue
    for task in contact_unsupervised contact_probe; do
      local options=(--set "task.structures=$EVAL_DIR" --set task.example_map=false) more
      [[ $task == contact_unsupervised ]] && read -r -a more <<< "$EVAL_UNSUP_OPTIONS"
      [[ $task == contact_probe ]] && read -r -a more <<< "$EVAL_PROBE_OPTIONS"
      options+=("${more[@]}")
      if timeout "$(cap 120)" "$SAPLING" eval "$task" --model "$model" "${options[@]}" --device "$DEVICE" --dtype fp32 \
        --out "$STEP_OUT/${arm}_$task.json" > "$STEP_OUT/${arm}_$task.log" 2>&1; then
        helper add-fields --out "$out" --set kind=eval "arm=$arm" "task=$task" "file=${arm}_$task.json" < /dev/null
      else
        tail -20 "$STEP_OUT/${arm}_$task.log"
        part_failed "$task on $arm"
      fi
    done
  done
  rm -rf "$WORK"/science_*  # weights: not kept
  return $PART_FAILED
}

# ---------------------------------------------------------------------------------------------- stage

# Here, before a GPU run: everything the campaign reads that is not in the repository goes into $STAGE (one ignored
# folder), and the whole tree that travels is measured against the device tool's limit. $STAGE holds the .deb files
# (already compressed) and data.tar.xz: the prepared BM5 subset (bm5/), its held-out unbound structures (bm5_eval/),
# the prepared PSICOV (psicov/) and the MLM batch (mlm_batch.fasta); prepared data halve under xz.
stage() {
  local build=${SAPLING_BUILD_DIR:-$REPO/build} data=${SAPLING_DATA_DIR:-$REPO/out/data}
  [[ -x $build/sapling ]] || die "$build/sapling not found: build first (SAPLING_BUILD_DIR=...)"
  PY=$(pick_python)
  # The data sets through sapling's data mechanism, checksums verified: copied from MIRROR when given (CI's and
  # this machine's mirror is ../shared), else already in $data (`sapling data fetch --to`).
  echo "== data sets bm5, psicov, embed_bench -> $data"
  if [[ -n ${MIRROR:-} ]]; then "$build/sapling" data fetch bm5 psicov embed_bench --mirror "$MIRROR" --to "$data" --quiet
  else "$build/sapling" data verify bm5 psicov embed_bench --to "$data" --quiet; fi \
    || die "the data sets bm5, psicov and embed_bench are not in $data (MIRROR=DIR copies them from a mirror)"
  local structures=$data/data/structures
  # gpu/data/ was the uncompressed layout before data.tar.xz: it would travel twice.
  rm -rf "$STAGE/data"
  mkdir -p "$STAGE/debs"
  echo "== .deb files -> $STAGE/debs"
  (cd "$STAGE/debs" && for p in $DEBS; do compgen -G "${p}_*.deb" > /dev/null || apt-get download "$p" 2>&1 | grep -v '^W: ' ; done)
  for p in $DEBS; do compgen -G "$STAGE/debs/${p}_*.deb" > /dev/null || die "apt-get download $p failed"; done
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/sapling-stage.XXXXXX") || die "mktemp"  # global: the trap runs after stage()
  trap 'rm -rf "$scratch"' EXIT
  mkdir -p "$scratch/data"
  # All of BM5 first, for its split only: the split is a hash of each complex's id and the seed, so a subset prepared
  # with the same options keeps every complex in the split it has here (as scripts/repro.sh splits it).
  local split=(--tokenizer foldseek_3di --valid-fraction 0.15 --seed 0 --split-by complex --quiet) files
  echo "== BM5 split (3Di tokens, 15% of complexes held out, as scripts/repro.sh); subset: $BM5_TRAIN_COMPLEXES training complexes"
  # From the structures' folder, so that index.json records short relative sources (it travels too).
  (cd "$structures" && "$build/sapling" prepare bm5 --out "$scratch/bm5_all" "${split[@]}") || die "sapling prepare failed"
  "$PY" "$HELPER" bm5-subset "$scratch/bm5_all/index.json" --train-complexes "$BM5_TRAIN_COMPLEXES" \
    --files "$scratch/bm5_files.txt" --stats "$scratch/bm5_stats.txt" || die "choosing the BM5 subset failed"
  mapfile -t files < "$scratch/bm5_files.txt"
  echo "== prepared BM5 subset ($(sed -n 's/^bm5_train_complexes=//p' "$scratch/bm5_stats.txt") training complexes, every held-out one)"
  (cd "$structures" && "$build/sapling" prepare "${files[@]}" --out "$scratch/data/bm5" "${split[@]}") || die "sapling prepare of the BM5 subset failed"
  # The subset's held-out unbound structures must be those of all of BM5 (the same contact evaluation set).
  cmp -s <(held_out_unbound "$scratch/bm5_all/index.json") <(held_out_unbound "$scratch/data/bm5/index.json") \
    || die "the BM5 subset's held-out complexes differ from all of BM5's"
  echo "== contact-evaluation structures (unbound chains of the held-out complexes)"
  mkdir -p "$scratch/data/bm5_eval"
  held_out_unbound "$scratch/data/bm5/index.json" | while read -r f; do cp "$structures/$f" "$scratch/data/bm5_eval/"; done
  echo "== prepared PSICOV (high-quality full entries, the reference model's data, as scripts/repro.sh)"
  (cd "$structures" && prepare_psicov "$build/sapling" psicov "$scratch/data/psicov" --quiet) || die "sapling prepare of PSICOV failed"
  # The MLM step's batch only: the first sequences long enough for its crop (what both sides take from the file).
  awk -v need=$(( MLM_TOKENS_MAX - 2 )) -v n=8 '/^>/ { if (seq != "" && length(seq) >= need && k < n) { print head; print seq; k++ }
      head = $0; seq = ""; next } { seq = seq $0 }
    END { if (seq != "" && length(seq) >= need && k < n) { print head; print seq } }' "$data/bench/embed_500.fasta" \
    > "$scratch/data/mlm_batch.fasta"
  (( $(grep -c '^>' "$scratch/data/mlm_batch.fasta") == 8 )) || die "embed_500.fasta has fewer than 8 sequences of $(( MLM_TOKENS_MAX - 2 )) residues"
  echo "== $STAGE/data.tar.xz"
  du -sh "$scratch"/data/* | sed 's/^/  uncompressed /'
  tar -C "$scratch/data" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - bm5 bm5_eval psicov mlm_batch.fasta \
    | xz -6 -T1 > "$STAGE/data.tar.xz" || die "packing the staged data failed"
  { echo "commit=$(git -C "$REPO" rev-parse --short HEAD)"; echo "staged=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    cat "$scratch/bm5_stats.txt"
    echo "bm5_eval_files=$(ls "$scratch/data/bm5_eval" | wc -l)"
    echo "data_tar_xz_bytes=$(stat -c %s "$STAGE/data.tar.xz")"; } > "$STAGE/stage.txt"
  # What the device tool sends: tracked files, untracked files git does not ignore, and the carried folder.
  local tree staged total
  tree=$(cd "$REPO" && { git ls-files -z; git ls-files -z -o --exclude-standard; } | xargs -0 -r stat -c %s 2> /dev/null | awk '{ s += $1 } END { print s + 0 }')
  staged=$(du -sb "$STAGE" | cut -f1)
  total=$(( tree + staged ))
  echo
  du -sh "$STAGE"/debs "$STAGE"/data.tar.xz | sed 's/^/  /'
  printf 'checkout %.1f MiB + %s %.1f MiB = %.1f MiB (limit %s MiB)\n' "$(awk -v b="$tree" 'BEGIN { print b / 2^20 }')" \
    "${STAGE#"$REPO"/}" "$(awk -v b="$staged" 'BEGIN { print b / 2^20 }')" "$(awk -v b="$total" 'BEGIN { print b / 2^20 }')" "$STAGE_LIMIT_MIB"
  (( total <= STAGE_LIMIT_MIB * 1048576 )) || die "what would travel is over $STAGE_LIMIT_MIB MiB (fewer BM5_TRAIN_COMPLEXES?)"
  echo "carry: [\"${STAGE#"$REPO"/}\"]"
  echo "command: bash scripts/gpu_campaign.sh /tmp/campaign; cp /tmp/campaign/summary.md /tmp/campaign/campaign.tar.gz \$OUT/"
}

# On the GPU machine: $STAGE/data.tar.xz into DIR (tar with xz, else Python's tarfile).
unpack_stage_data() {
  local archive=$STAGE/data.tar.xz
  [[ -f $archive ]] || { echo "no $archive: run scripts/gpu_campaign.sh --stage here and carry gpu" >&2; return 1; }
  mkdir -p "$1"
  tar -C "$1" -xJf "$archive" 2> /dev/null \
    || "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$archive" "$1"
}

# ---------------------------------------------------------------------------------------------- main

settings() {
  PY=$(pick_python)
  if [[ $MODE == rehearsal ]]; then
    BUILD_DIR=${SAPLING_BUILD_DIR:-$REPO/build}
    DEVICE=cpu THREADS=${SAPLING_NUM_THREADS:-1}  # 1: OpenMP threads spin badly when ctest runs tests side by side
    : "${CAMPAIGN_SECONDS:=280}" "${CAP_BUILD:=20}" "${CAP_PARITY:=60}" "${CAP_MLM:=60}" "${CAP_SAESM2:=60}" "${SUMMARY_RESERVE:=15}"
    : "${CAP_NCCL:=30}" "${CAP_PREPARE:=40}" "${PREPARE_ENTRIES:=40}" "${PREPARE_PGNN_DIMS:=[16, 16]}"
    : "${MLM_SHAPES:=esm2_t6_8M_UR50D}" "${MLM_BATCH:=2}" "${MLM_TOKENS:=66}" "${MLM_WARMUP:=1}" "${MLM_STEPS:=1}" "${PEAK_TFLOPS:=1}"
    : "${SAESM2_TRAINEE:=esm2_t6_8M_UR50D}" "${SAESM2_REFERENCE:=esm2_t6_8M_UR50D}" "${SAESM2_STEPS:=2}" "${SAESM2_SKIP:=0}"
    : "${SAESM2_PGNN_DIMS:=[16, 16]}" "${SCIENCE_STEPS:=2}" "${SCIENCE_ARM_SECONDS:=30}" "${SCIENCE_EVAL_RESERVE:=0}"
    : "${EVAL_UNSUP_OPTIONS:=--set task.train_chains=2 --set task.max_iterations=50}"
    : "${EVAL_PROBE_OPTIONS:=--set task.train_chains=2 --set task.steps=20}" "${SCIENCE_REFERENCE_OPTIONS:=--max-steps 2}"
    : "${PARITY_SEQUENCES:=4}" "${SCIENCE_EVAL_ARMS:=mlm_only full}"
    # Short crops and small batches: the rehearsal checks that the steps run, not what they measure.
    : "${SAESM2_EXTRA_SETS:=--set data.max_length=48 --set data.tokens_per_batch=256}"
    : "${SCIENCE_EXTRA_SETS:=--set data.max_length=48 --set data.tokens_per_batch=256 --set train.valid_max_batches=1}"
  else
    BUILD_DIR=${BUILD_DIR:-$REPO/build-cuda}
    DEVICE=cuda THREADS=$(nproc)
    : "${CAMPAIGN_SECONDS:=540}" "${CAP_BUILD:=240}" "${CAP_PARITY:=45}" "${CAP_MLM:=90}" "${CAP_SAESM2:=90}" "${SUMMARY_RESERVE:=15}"
    : "${CAP_NCCL:=40}" "${CAP_PREPARE:=75}" "${PREPARE_ENTRIES:=3000}" "${PREPARE_PGNN_DIMS:=}"
    : "${MLM_SHAPES:=esm2_t12_35M_UR50D esm2_t30_150M_UR50D esm2_t33_650M_UR50D}" "${MLM_BATCH:=8}" "${MLM_TOKENS:=512}"
    : "${MLM_WARMUP:=2}" "${MLM_STEPS:=5}" "${PEAK_TFLOPS:=790}"
    : "${SAESM2_TRAINEE:=esm2_t33_650M_UR50D}" "${SAESM2_REFERENCE:=esm2_t30_150M_UR50D}" "${SAESM2_STEPS:=12}" "${SAESM2_SKIP:=2}"
    : "${SCIENCE_STEPS:=auto}" "${SCIENCE_ARM_SECONDS:=120}" "${SCIENCE_EVAL_RESERVE:=60}"
    : "${EVAL_UNSUP_OPTIONS:=}" "${EVAL_PROBE_OPTIONS:=}" "${SCIENCE_REFERENCE_OPTIONS:=}" "${PARITY_SEQUENCES:=0}"
    : "${SAESM2_EXTRA_SETS:=}" "${SCIENCE_EXTRA_SETS:=}"
    export LD_LIBRARY_PATH=$BUILD_DIR/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  : "${SAESM2_ARMS:=proteins tokens packed}" "${SAESM2_PGNN_DIMS:=}" "${SCIENCE_EVAL_ARMS:=base mlm_only full}" "${NCCL_STEPS:=3}"
  SAPLING=$BUILD_DIR/sapling
  export PY BUILD_DIR DEVICE THREADS SAPLING CAMPAIGN_SECONDS SUMMARY_RESERVE MLM_SHAPES MLM_BATCH MLM_TOKENS MLM_WARMUP \
    MLM_STEPS PEAK_TFLOPS SAESM2_TRAINEE SAESM2_REFERENCE SAESM2_STEPS SAESM2_SKIP SAESM2_PGNN_DIMS SAESM2_ARMS \
    SCIENCE_STEPS SCIENCE_ARM_SECONDS SCIENCE_EVAL_RESERVE EVAL_UNSUP_OPTIONS EVAL_PROBE_OPTIONS SCIENCE_REFERENCE_OPTIONS \
    PARITY_SEQUENCES SAESM2_EXTRA_SETS SCIENCE_EXTRA_SETS SCIENCE_EVAL_ARMS NCCL_STEPS PREPARE_ENTRIES PREPARE_PGNN_DIMS
  export SAPLING_NUM_THREADS=$THREADS
}

# One step in a child process under `timeout` (which ends the step's whole process group), with its status kept.
run_step() {
  local name=$1 cap_s=$2 budget start rc status
  budget=$(( DEADLINE - $(now) - SUMMARY_RESERVE ))
  (( cap_s > 0 && cap_s < budget )) && budget=$cap_s
  mkdir -p "$OUTDIR/$name"
  start=$(now)
  if (( budget < 5 )); then
    echo "== $name"
    status="not run (no time left)" rc=1
  else
    echo "== $name (cap ${budget} s)"
    STEP_DEADLINE=$(( start + budget )) timeout -k 10 "$budget" bash "$SELF" --run-step "$name" > "$OUTDIR/$name/log.txt" 2>&1
    rc=$?
    case $rc in
      0) status=passed ;;
      124 | 137) status="timed out" ;;
      *) status="failed" ;;
    esac
  fi
  (( rc == 0 )) || ALL_PASSED=0
  local note
  note=$(cat "$OUTDIR/$name/failed.txt" "$OUTDIR/$name/note.txt" 2> /dev/null | paste -sd ';' | sed 's/;/; /g' | tr '\t' ' ')
  [[ $rc != 0 && -z $note ]] && note=$(grep -s -m1 '^error' "$OUTDIR/$name/log.txt" | tr '\t' ' ' | cut -c1-200)
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(now) - start ))" "$budget" "$note" >> "$OUTDIR/steps.tsv"
  echo "   $status in $(( $(now) - start )) s${note:+: $note}"
}

campaign() {
  [[ -n ${OUTDIR:-} ]] || usage
  mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
  OUTDIR=$(cd "$OUTDIR" && pwd)
  settings
  START=$(now) DEADLINE=$(( $(now) + CAMPAIGN_SECONDS )) ALL_PASSED=1
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/sapling-campaign.XXXXXX") || die "mktemp"
  # The SaESM2 runs' folders: `sapling train` refuses to start unless the disk could hold its checkpoints (about
  # 23 GB for the 650M model), which it never writes here (train_steps stops it first). On the GPU machine a RAM
  # disk with room for that check, where there is one; else the scratch folder.
  RUNS=$WORK
  if [[ $MODE == gpu && -d /dev/shm ]] && (( $(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > 30 * 1024 * 1024 )); then
    RUNS=$(mktemp -d /dev/shm/sapling-campaign.XXXXXX) || RUNS=$WORK
  fi
  [[ -n ${CAMPAIGN_KEEP_WORK:-} ]] || trap 'rm -rf "$WORK" "$RUNS"' EXIT
  if [[ $MODE == rehearsal ]]; then
    BM5=$WORK/sample EVAL_DIR=$WORK/sample_eval PSICOV=$WORK/sample_psicov MLM_FASTA=$SAMPLE_FASTA
  else
    # The staged data travel as one archive (--stage); unpacked into the scratch folder for this run.
    unpack_stage_data "$WORK/data" || echo "warning: no staged data: the steps that read BM5, PSICOV or the MLM batch will fail"
    BM5=$WORK/data/bm5 EVAL_DIR=$WORK/data/bm5_eval PSICOV=$WORK/data/psicov MLM_FASTA=$WORK/data/mlm_batch.fasta
  fi
  export MODE OUTDIR WORK RUNS BM5 EVAL_DIR PSICOV MLM_FASTA
  rm -f "$OUTDIR/steps.tsv"
  echo "sapling GPU campaign ($MODE): $OUTDIR, budget $CAMPAIGN_SECONDS s, python $PY"
  run_step build "$CAP_BUILD"
  record_versions
  run_step parity "$CAP_PARITY"
  run_step nccl "$CAP_NCCL"
  run_step mlm "$CAP_MLM"
  run_step saesm2 "$CAP_SAESM2"
  run_step prepare "$CAP_PREPARE"
  run_step science 0
  printf 'wall=%s\nbudget=%s\n' "$(( $(now) - START ))" "$CAMPAIGN_SECONDS" >> "$OUTDIR/versions.txt"
  timeout 30 "$PY" "$HELPER" summary "$OUTDIR" > "$OUTDIR/summary.md" || { echo "summary failed"; ALL_PASSED=0; }
  (cd "$OUTDIR" && tar czf campaign.tar.gz --exclude campaign.tar.gz ./*) || ALL_PASSED=0
  echo "summary: $OUTDIR/summary.md ($(( $(now) - START )) s)"
  (( ALL_PASSED )) && echo "every step passed" || echo "some steps did not pass (see $OUTDIR/steps.tsv)"
  (( ALL_PASSED ))
}

case ${1:-} in
  --stage) stage ;;
  --cpu-rehearsal) MODE=rehearsal OUTDIR=${2:-} campaign ;;
  --run-step)
    # Child of run_step: the environment carries the settings.
    STEP_OUT=$OUTDIR/$2
    "step_$2"
    ;;
  -h | --help | "") usage ;;
  -*) usage ;;
  *) MODE=gpu OUTDIR=$1 campaign ;;
esac
