// AutocastEncoder: runs any SequenceEncoder's forward passes under bf16/fp16 autocast and returns float32 outputs.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "sapling/interfaces.hpp"

namespace sapling {

// Wraps `inner` so that forward() and contacts() run under AutocastGuard(device, dtype) and every tensor they
// return is float32 again. Code that consumes the outputs (an evaluation task's probe fits, its metrics, a
// logistic regression on attention maps) therefore runs in float32 as before: only the encoder's matrix
// products change precision, which is what the accuracy budget of docs/performance.md measures. Everything
// else (tokenizer, sizes, parameters, to(), save) is the inner model's: the inner model is this module's one
// child, so parameters() and to(device) reach it.
class SAPLING_API AutocastEncoder : public SequenceEncoder {
 public:
  AutocastEncoder(std::shared_ptr<SequenceEncoder> inner, torch::Device device, torch::ScalarType dtype);

  std::string family() const override { return inner_->family(); }
  const Tokenizer& tokenizer() const override { return inner_->tokenizer(); }
  int64_t hidden_size() const override { return inner_->hidden_size(); }
  int64_t num_layers() const override { return inner_->num_layers(); }
  int64_t num_heads() const override { return inner_->num_heads(); }
  int64_t max_tokens() const override { return inner_->max_tokens(); }
  int64_t pretrained_tokens() const override { return inner_->pretrained_tokens(); }
  bool supports_packing() const override { return inner_->supports_packing(); }

  EncoderOutput forward(const torch::Tensor& ids, const torch::Tensor& mask, const ForwardRequest& request) override;
  torch::Tensor representation(const EncoderOutput& out, int64_t layer) const override;
  torch::Tensor contacts(const EncoderOutput& out, const torch::Tensor& ids, const torch::Tensor& mask) override;

  void load_pretrained(const std::filesystem::path& dir) override { inner_->load_pretrained(dir); }
  void save_pretrained(const std::filesystem::path& dir) const override { inner_->save_pretrained(dir); }
  void save_tokenizer(const std::filesystem::path& dir) const override { inner_->save_tokenizer(dir); }
  CardFacts card_facts() const override { return inner_->card_facts(); }
  ParameterGroups parameter_groups() override { return inner_->parameter_groups(); }

  SequenceEncoder& inner() { return *inner_; }
  torch::ScalarType dtype() const { return dtype_; }

 private:
  std::shared_ptr<SequenceEncoder> inner_;
  torch::Device device_;
  torch::ScalarType dtype_;
};

// `model` itself for float32; otherwise `model` wrapped in an AutocastEncoder for (device, dtype).
SAPLING_API std::shared_ptr<SequenceEncoder> with_compute_dtype(std::shared_ptr<SequenceEncoder> model,
                                                               const torch::Device& device, torch::ScalarType dtype);

}  // namespace sapling
