// attention() and the contact-feature helpers declared in attention.hpp and contacts.hpp.
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu_attention_kernel.hpp"
#include "sapling/attention.hpp"
#include "sapling/contacts.hpp"
#include "sapling/log.hpp"

namespace sapling {
namespace {

CpuAttentionKernel kernel_from_environment() {
  const char* value = std::getenv("SAPLING_CPU_ATTENTION");
  if (value == nullptr || *value == 0) return CpuAttentionKernel::Measured;
  if (std::strcmp(value, "fused") == 0) return CpuAttentionKernel::Fused;
  if (std::strcmp(value, "sdpa") == 0) return CpuAttentionKernel::Sdpa;
  if (std::strcmp(value, "reference") == 0) return CpuAttentionKernel::Reference;
  warn("SAPLING_CPU_ATTENTION=", value, " is not fused, sdpa or reference: ignored");
  return CpuAttentionKernel::Measured;
}

std::atomic<CpuAttentionKernel>& kernel_choice() {
  static std::atomic<CpuAttentionKernel> choice{kernel_from_environment()};
  return choice;
}

// The fused kernels serve CPU attention without weights to return: a square self-attention, heads of at most
// kFusedAttentionMaxHeadDim, float32 or bf16. With gradients required they run inside an autograd Function
// (fused forward that keeps each row's log-sum-exp, fused backward).
bool fused_kernels_fit(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  if (!q.device().is_cpu() || q.dim() != 4 || q.size(2) != k.size(2)) return false;
  if (q.size(-1) > detail::kFusedAttentionMaxHeadDim) return false;
  const auto dtype = q.scalar_type();
  return (dtype == torch::kFloat32 || dtype == torch::kBFloat16) && k.scalar_type() == dtype && v.scalar_type() == dtype;
}

bool needs_gradient(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
}

// What the fused kernels take: float32 [B, H, T, Dh] copies (bf16 inputs from CPU autocast are computed in
// float32, like the tensor path's float32 softmax) and the mask as one bool row per batch element ([B, T]) or
// one per query ([B, 1, T, T]).
struct FusedAttentionInputs {
  torch::Tensor q, k, v, mask;
};

FusedAttentionInputs fused_attention_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& keep) {
  const int64_t B = q.size(0), T = q.size(2);
  const bool pair = keep.size(2) != 1;
  return {q.to(torch::kFloat32).contiguous(), k.to(torch::kFloat32).contiguous(), v.to(torch::kFloat32).contiguous(),
          pair ? keep.expand({B, 1, T, T}).contiguous() : keep.reshape({B, T}).contiguous()};
}

// Calls body(bh, key_keep, pair_keep, scratch) for every (batch, head) of q's [B, H, T, Dh] in parallel, with
// the kernels' mask arguments for that head (one of them null) and `scratch_floats` of per-thread scratch.
template <typename Body>
void for_each_head(const torch::Tensor& q, const torch::Tensor& mask, int64_t scratch_floats, const Body& body) {
  const int64_t H = q.size(1), T = q.size(2);
  const bool pair = mask.dim() == 4;
  const bool* mp = mask.data_ptr<bool>();
  at::parallel_for(0, q.size(0) * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(scratch_floats));
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H;
      body(bh, pair ? nullptr : mp + b * T, pair ? mp + b * T * T : nullptr, scratch.data());
    }
  });
}

// The forward over every (batch, head). lse: a [B, H, T] float32 tensor to fill, or undefined.
torch::Tensor fused_attention_forward(const FusedAttentionInputs& in, double scale, const torch::Tensor& lse) {
  auto out = torch::empty_like(in.q);
  const float *qp = in.q.data_ptr<float>(), *kp = in.k.data_ptr<float>(), *vp = in.v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* lp = lse.defined() ? lse.data_ptr<float>() : nullptr;
  const int64_t T = in.q.size(2), Dh = in.q.size(3), head = T * Dh;
  for_each_head(in.q, in.mask, detail::fused_attention_scratch_floats(T, Dh),
                [&](int64_t bh, const bool* key_keep, const bool* pair_keep, float* scratch) {
                  detail::attend_one_head(qp + bh * head, kp + bh * head, vp + bh * head, key_keep, pair_keep, T, Dh,
                                          static_cast<float>(scale), op + bh * head,
                                          lp != nullptr ? lp + bh * T : nullptr, scratch);
                });
  return out;
}

// Fused attention under autograd. Saved for the backward: the float32 inputs, the output and each row's
// log-sum-exp ([B, H, T]), O(T) per head where the tensor path keeps the [B, H, T, T] probabilities.
// First derivatives only: the backward is not itself differentiable.
class FusedCpuAttention : public torch::autograd::Function<FusedCpuAttention> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& keep, double scale) {
    const auto in = fused_attention_inputs(q, k, v, keep);
    const auto lse = torch::empty({q.size(0), q.size(1), q.size(2)}, in.q.options());
    const auto out = fused_attention_forward(in, scale, lse);
    ctx->save_for_backward({in.q, in.k, in.v, out, lse, in.mask});
    ctx->saved_data["scale"] = scale;
    // q, k and v share one dtype (fused_cpu_attention_applies); their gradients are returned in it.
    ctx->saved_data["dtype"] = static_cast<int64_t>(q.scalar_type());
    return out.to(q.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4], &mask = saved[5];
    const auto dout = grads[0].to(torch::kFloat32).contiguous();
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["dtype"].toInt());
    auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    const int64_t T = q.size(2), Dh = q.size(3), head = T * Dh;
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float *op = out.data_ptr<float>(), *gp = dout.data_ptr<float>(), *lp = lse.data_ptr<float>();
    float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
    for_each_head(q, mask, detail::fused_attention_backward_scratch_floats(T, Dh),
                  [&](int64_t bh, const bool* key_keep, const bool* pair_keep, float* scratch) {
                    const int64_t at = bh * head;
                    detail::attend_one_head_backward(qp + at, kp + at, vp + at, op + at, gp + at, lp + bh * T,
                                                     key_keep, pair_keep, T, Dh, scale, dqp + at, dkp + at, dvp + at,
                                                     scratch);
                  });
    return {dq.to(dtype), dk.to(dtype), dv.to(dtype), torch::Tensor(), torch::Tensor()};
  }
};

// q, k, v [B, H, T, Dh]; keep: [B, 1, 1, T] key mask or [B, 1, T, T] pair mask (bool). Returned in q's dtype.
torch::Tensor fused_cpu_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& keep, double scale) {
  if (needs_gradient(q, k, v)) return FusedCpuAttention::apply(q, k, v, keep, scale);
  return fused_attention_forward(fused_attention_inputs(q, k, v, keep), scale, torch::Tensor()).to(q.scalar_type());
}

}  // namespace

CpuAttentionKernel cpu_attention_kernel() { return kernel_choice().load(); }
void set_cpu_attention_kernel(CpuAttentionKernel kernel) { kernel_choice().store(kernel); }

bool has_fused_attention() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
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
  if (!need_weights) {
    auto kernel = q.device().is_cpu() ? cpu_attention_kernel() : CpuAttentionKernel::Sdpa;
    if (kernel == CpuAttentionKernel::Sdpa && !has_fused_attention()) kernel = CpuAttentionKernel::Fused;
    if (kernel == CpuAttentionKernel::Measured) {
      // LibTorch 2.11 on the CPU (docs/performance.md): SDPA's float32 backward beat the fused one by 3-6% in the 8M
      // train step; in inference on more than one thread SDPA's forward scales better (2 threads: +26-38% float32,
      // +12% bf16 in `sapling embed`); the fused kernels won everywhere else (bf16 training by 30% on one thread and
      // 8% on two, inference on one thread by 0-9%).
      const bool training = needs_gradient(q, k, v);
      const bool sdpa_wins = training ? q.scalar_type() == torch::kFloat32 : at::get_num_threads() > 1;
      kernel = has_fused_attention() && sdpa_wins ? CpuAttentionKernel::Sdpa : CpuAttentionKernel::Fused;
    }
    if (kernel == CpuAttentionKernel::Fused && fused_kernels_fit(q, k, v)) return {fused_cpu_attention(q, k, v, keep, scale), {}};
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    // flash / memory-efficient on CUDA, LibTorch's own CPU kernels otherwise. It takes the scale directly.
    if (kernel != CpuAttentionKernel::Reference)
      return {at::scaled_dot_product_attention(q, k, v, keep, 0.0, false, scale), torch::Tensor()};
#endif
  }
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
