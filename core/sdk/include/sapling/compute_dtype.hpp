// The compute dtype of a run (--dtype auto|fp32|bf16|fp16): what the CPU's matrix units support, and the choice;
// host batches onto the run's device.
#pragma once
#include <torch/torch.h>

#include <string>

#include "sapling/export.hpp"

namespace sapling {

// The bfloat16 matrix instructions of this CPU, from the kernel's CPU flags (so the OS supports their state).
// SAPLING_CPU_BF16=1 or 0 overrides the detection (tests force either answer; a user may rule bf16 out).
struct SAPLING_API CpuMatrixUnits {
  bool avx512_bf16 = false;  // AVX512-BF16 dot products (Intel Cooper Lake and later, AMD Zen 4 and later)
  bool amx_bf16 = false;     // AMX tiles (Intel Sapphire Rapids and later)
  bool forced = false;       // set by SAPLING_CPU_BF16
  bool bf16() const { return avx512_bf16 || amx_bf16; }
  std::string describe() const;  // e.g. "amx_bf16 avx512_bf16", or "no bf16 units"
};
SAPLING_API CpuMatrixUnits cpu_matrix_units();

// Parses a dtype choice (fp32|float32, bf16|bfloat16, fp16|float16, auto) and resolves it for `device`: auto is
// bf16 on CUDA and on a CPU with bf16 units, float32 elsewhere. fp16 is refused on the CPU (LibTorch's CPU
// autocast is bf16 only); bf16 on a CPU without the units runs, slowly, with a warning. `setting` names the
// choice in those messages: the commands' --dtype, or the trainer's [train] precision.
SAPLING_API torch::ScalarType resolve_compute_dtype(const std::string& requested, const torch::Device& device,
                                                    const std::string& setting = "--dtype");

// The short name --dtype takes for `dtype`: "fp32", "bf16" or "fp16" (what output metadata records).
SAPLING_API std::string compute_dtype_name(torch::ScalarType dtype);

// PyTorch's name for a floating `dtype`, as transformers' config.json records it (`dtype`, `torch_dtype`):
// "float32", "bfloat16" or "float16".
SAPLING_API std::string torch_dtype_name(torch::ScalarType dtype);

// One line for the log: "bf16 autocast on the CPU (avx512_bf16)", "float32 on cuda:0", ...
SAPLING_API std::string describe_compute(torch::ScalarType dtype, const torch::Device& device);

// The measured peak of a compute path in TFLOP/s, the denominator of an MFU: the best of three n x n x n
// products in `dtype` on `device` after one warm-up (n = 2048 on the CPU, 8192 on CUDA). float32 on the CPU is
// the system BLAS; bf16 on the CPU is oneDNN (AVX512-BF16 or AMX). About a second on a small CPU.
SAPLING_API double measure_peak_tflops(const torch::Device& device, torch::ScalarType dtype);

// A host batch tensor on `device`. On CUDA through page-locked memory and an asynchronous copy on the current stream
// (PyTorch's DataLoader pin_memory=True with .to(device, non_blocking=True)): the copy overlaps the host's work on the
// next tensors, and the stream orders it before the kernels that read it. Elsewhere a plain .to(device).
SAPLING_API torch::Tensor to_device(const torch::Tensor& host, const torch::Device& device);

}  // namespace sapling
