// One attention function for every pLM: explicit float32-softmax path (weights returned); without weights, the
// fused CPU kernels (forward, and backward under autograd) or LibTorch >= 2.1's scaled_dot_product_attention.
#pragma once
#include <torch/torch.h>

#include "sapling/export.hpp"

namespace sapling {

struct AttentionResult {
  torch::Tensor output;  // [B, H, T, Dh]
  torch::Tensor probs;   // [B, H, T, T] softmax weights (float32), only when requested
};

// q, k, v: [B, H, T, Dh] (already rotated). key_mask: [B, T] bool, true at
// real tokens (padded keys get -inf before the softmax), or a pair mask
// [B, 1, T, T] (query x key, packed rows: packed_attention_mask()) in which
// every query row allows at least one key. `scale` multiplies
// q k^T (pass 1.0 when q was pre-scaled, as ESM2 does). The softmax runs in
// float32 and is cast back to q's dtype, as the reference implementations do. Without weights on the CPU
// (float32 or bf16, heads up to 128 wide) the fused kernels run, differentiable to first order; second
// derivatives through attention() are not supported there.
SAPLING_API AttentionResult attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& key_mask, double scale, bool need_weights);

// True when this LibTorch has scaled_dot_product_attention (LibTorch >= 2.1).
SAPLING_API bool has_fused_attention();

// The kernel of CPU attention without weights. Measured (the default) takes the faster per path as measured on
// LibTorch 2.11 (docs/performance.md, "CPU attention: fused kernels against SDPA"): SDPA for float32 with gradients
// (a training step) and for inference on more than one intra-op thread, the fused kernels otherwise; without SDPA
// (LibTorch 1.13) always the fused kernels. Fused, Sdpa
// and Reference (the explicit float32-softmax tensor path) force one, for A/B benchmarks and tests; the environment
// variable SAPLING_CPU_ATTENTION=fused|sdpa|reference sets the starting choice.
enum class CpuAttentionKernel { Measured, Fused, Sdpa, Reference };
SAPLING_API CpuAttentionKernel cpu_attention_kernel();
SAPLING_API void set_cpu_attention_kernel(CpuAttentionKernel kernel);

}  // namespace sapling
