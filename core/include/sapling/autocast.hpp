// RAII mixed-precision autocast for CUDA (bf16/fp16) and the CPU (bf16), over the LibTorch 1.x and 2.x APIs.
#pragma once
#include <torch/torch.h>

#include "sapling/export.hpp"

namespace sapling {

// Inside the guard, matrix products on `device` run in `dtype` while numerically
// sensitive ops (LayerNorm, softmax, rotary in float32) keep float32, as
// torch.autocast does in Python (on the CPU, bf16 products go through oneDNN).
// Weights stay float32. A no-op for float32, so call sites need no branches.
class SAPLING_API AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, torch::ScalarType dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kFloat16;
};

}  // namespace sapling
