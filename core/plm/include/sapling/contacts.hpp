// Attention-map contact features shared by pLM contact heads: eos/pad masking, symmetrisation, APC.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "sapling/export.hpp"

namespace sapling {

// x + x^T over the last two dims.
SAPLING_API torch::Tensor symmetrize(const torch::Tensor& x);
// Average product correction per channel: x - rowsum * colsum / total.
SAPLING_API torch::Tensor average_product_correct(const torch::Tensor& x);

// The ESM contact-head features: stacks per-layer attention maps [B, H, T, T]
// layer-major into [B, layers*heads, T, T], zeroes pad rows/columns and the
// rows/columns of `eos_id`, drops the last and the first (bos/cls) position,
// then symmetrises and applies APC. Returns [B, T-2, T-2, layers*heads]
// (channels last, ready for a Linear(layers*heads -> 1)).
SAPLING_API torch::Tensor attention_contact_features(const std::vector<torch::Tensor>& attentions,
                                                     const torch::Tensor& ids, const torch::Tensor& mask,
                                                     int64_t eos_id);

}  // namespace sapling
