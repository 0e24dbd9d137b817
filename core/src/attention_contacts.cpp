// attention() and the contact-feature helpers declared in attention.hpp and contacts.hpp.
#include "sapling/attention.hpp"
#include "sapling/contacts.hpp"

namespace sapling {

bool has_fused_attention() {
#if TORCH_VERSION_MAJOR >= 2
  return true;
#else
  return false;
#endif
}

AttentionResult attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& key_mask, double scale, bool need_weights) {
  const auto B = q.size(0);
  const auto T = k.size(2);
  // A key mask [B, T] broadcasts over heads and queries; a pair mask [B, 1, T, T] (packed rows) over heads.
  auto keep = key_mask.dim() == 4 ? key_mask.to(torch::kBool) : key_mask.to(torch::kBool).view({B, 1, 1, T});
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1)
  if (!need_weights) {
    // Fused kernel (flash / memory-efficient on CUDA). It takes the scale directly.
    return {at::scaled_dot_product_attention(q, k, v, keep, 0.0, false, scale), torch::Tensor()};
  }
#endif
  auto logits = torch::matmul(q, k.transpose(-1, -2));
  if (scale != 1.0) logits = logits * scale;
  logits = logits.to(torch::kFloat32).masked_fill(keep.logical_not(), -std::numeric_limits<float>::infinity());
  auto probs = torch::softmax(logits, -1);
  auto out = torch::matmul(probs.to(v.scalar_type()), v);
  return {out, need_weights ? probs : torch::Tensor()};
}

torch::Tensor symmetrize(const torch::Tensor& x) { return x + x.transpose(-1, -2); }

torch::Tensor average_product_correct(const torch::Tensor& x) {
  auto a1 = x.sum(-1, true);
  auto a2 = x.sum(-2, true);
  auto a12 = x.sum({-1, -2}, true);
  return x - a1 * a2 / a12;
}

torch::Tensor attention_contact_features(const std::vector<torch::Tensor>& attentions, const torch::Tensor& ids,
                                         const torch::Tensor& mask, int64_t eos_id) {
  TORCH_CHECK(!attentions.empty(), "contact features need attention maps (request attentions)");
  auto stacked = torch::stack(attentions, 1).to(torch::kFloat32);  // [B, layers, H, T, T]
  const auto m = mask.to(torch::kFloat32);
  stacked = stacked * m.view({m.size(0), 1, 1, 1, m.size(1)}) * m.view({m.size(0), 1, 1, m.size(1), 1});
  auto not_eos = ids.ne(eos_id).to(torch::kFloat32);
  auto eos_mask = not_eos.unsqueeze(1) * not_eos.unsqueeze(2);
  stacked = stacked * eos_mask.unsqueeze(1).unsqueeze(1);
  const auto T = stacked.size(-1);
  stacked = stacked.slice(-1, 1, T - 1).slice(-2, 1, T - 1);
  const auto B = stacked.size(0);
  auto features = stacked.reshape({B, stacked.size(1) * stacked.size(2), T - 2, T - 2});
  features = average_product_correct(symmetrize(features));
  return features.permute({0, 2, 3, 1});
}

}  // namespace sapling
