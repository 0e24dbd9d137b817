// attention() and the contact-feature helpers declared in attention.hpp and contacts.hpp.
#include <ATen/Parallel.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu_attention_kernel.hpp"
#include "sapling/attention.hpp"
#include "sapling/contacts.hpp"

namespace sapling {
namespace {

// The fused kernel serves CPU inference: no gradient to keep (it has no backward), no weights to return, a
// square self-attention and heads of at most kFusedAttentionMaxHeadDim. SAPLING_CPU_ATTENTION=reference forces
// the tensor path (A/B benchmarks and the parity test compare the two in one process).
bool fused_cpu_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  static const bool disabled = [] {
    const char* env = std::getenv("SAPLING_CPU_ATTENTION");
    return env != nullptr && std::strcmp(env, "reference") == 0;
  }();
  if (disabled || !q.device().is_cpu() || q.dim() != 4 || q.size(2) != k.size(2)) return false;
  if (q.size(-1) > detail::kFusedAttentionMaxHeadDim) return false;
  const auto dtype = q.scalar_type();
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16) return false;
  return !(torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad()));
}

// q, k, v [B, H, T, Dh]; keep: [B, 1, 1, T] key mask or [B, 1, T, T] pair mask (bool). bf16 inputs (CPU
// autocast) are computed in float32 and returned in bf16, like the tensor path's float32 softmax.
torch::Tensor fused_cpu_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& keep, double scale) {
  const auto qf = q.to(torch::kFloat32).contiguous(), kf = k.to(torch::kFloat32).contiguous(),
             vf = v.to(torch::kFloat32).contiguous();
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3);
  const bool pair = keep.size(2) != 1;
  const auto mask = pair ? keep.expand({B, 1, T, T}).contiguous() : keep.reshape({B, T}).contiguous();
  auto out = torch::empty_like(qf);
  const float *qp = qf.data_ptr<float>(), *kp = kf.data_ptr<float>(), *vp = vf.data_ptr<float>();
  const bool* mp = mask.data_ptr<bool>();
  float* op = out.data_ptr<float>();
  const int64_t head = T * Dh, scratch = detail::fused_attention_scratch_floats(T, Dh);
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buffer(static_cast<size_t>(scratch));
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H;
      detail::attend_one_head(qp + bh * head, kp + bh * head, vp + bh * head, pair ? nullptr : mp + b * T,
                              pair ? mp + b * T * T : nullptr, T, Dh, static_cast<float>(scale), op + bh * head,
                              buffer.data());
    }
  });
  return out.to(q.scalar_type());
}

}  // namespace

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
  if (!need_weights && fused_cpu_attention_applies(q, k, v)) return {fused_cpu_attention(q, k, v, keep, scale), {}};
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
