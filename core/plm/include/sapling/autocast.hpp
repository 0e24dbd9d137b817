// RAII mixed-precision autocast for CUDA (bf16/fp16) and the CPU (bf16), and a pause of it, over the LibTorch 1.x and 2.x APIs.
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

// Turns autocast off (CPU and CUDA) inside its scope and restores it after: for a small product whose result
// must stay float32 under an AutocastGuard, such as a vocabulary projection whose logits become
// log-probabilities (bf16 logits of magnitude ~10 are only good to ~0.05).
class SAPLING_API AutocastPause {
 public:
  AutocastPause();
  ~AutocastPause();
  AutocastPause(const AutocastPause&) = delete;
  AutocastPause& operator=(const AutocastPause&) = delete;

 private:
  bool cpu_was_enabled_ = false;
  bool cuda_was_enabled_ = false;
};

}  // namespace sapling
