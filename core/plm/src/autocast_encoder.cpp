// AutocastEncoder: autocast around an encoder's forward passes, float32 tensors out.
#include "sapling/autocast_encoder.hpp"

#include "sapling/autocast.hpp"

namespace sapling {
namespace {

torch::Tensor as_float32(const torch::Tensor& t) {
  return t.defined() && t.is_floating_point() && t.scalar_type() != torch::kFloat32 ? t.to(torch::kFloat32) : t;
}

}  // namespace

AutocastEncoder::AutocastEncoder(std::shared_ptr<SequenceEncoder> inner, torch::Device device, torch::ScalarType dtype)
    : inner_(register_module("inner", std::move(inner))), device_(device), dtype_(dtype) {}

EncoderOutput AutocastEncoder::forward(const torch::Tensor& ids, const torch::Tensor& mask,
                                       const ForwardRequest& request) {
  EncoderOutput out;
  {
    AutocastGuard autocast(device_, dtype_);
    out = inner_->forward(ids, mask, request);
  }
  // Converted outside the guard, so the casts themselves are not autocast ops.
  out.last_hidden = as_float32(out.last_hidden);
  out.logits = as_float32(out.logits);
  for (auto& h : out.hidden_states) h = as_float32(h);
  for (auto& a : out.attentions) a = as_float32(a);
  return out;
}

torch::Tensor AutocastEncoder::representation(const EncoderOutput& out, int64_t layer) const {
  return as_float32(inner_->representation(out, layer));
}

torch::Tensor AutocastEncoder::contacts(const EncoderOutput& out, const torch::Tensor& ids, const torch::Tensor& mask) {
  torch::Tensor probs;
  {
    AutocastGuard autocast(device_, dtype_);
    probs = inner_->contacts(out, ids, mask);
  }
  return as_float32(probs);
}

std::shared_ptr<SequenceEncoder> with_compute_dtype(std::shared_ptr<SequenceEncoder> model, const torch::Device& device,
                                                    torch::ScalarType dtype) {
  if (dtype == torch::kFloat32) return model;
  return std::make_shared<AutocastEncoder>(std::move(model), device, dtype);
}

}  // namespace sapling
