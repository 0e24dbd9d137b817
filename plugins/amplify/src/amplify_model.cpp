// AMPLIFY forward pass: RMSNorm, SwiGLU, interleaved rotary attention blocks, LM decoder, contacts.
#include "amplify_model.hpp"

#include <cmath>

#include "sapling/attention.hpp"  // for attention()
#include "sapling/autocast.hpp"
#include "sapling/contacts.hpp"   // for attention_contact_features()
#include "sapling/error.hpp"
#include "sapling/log.hpp"
#include "sapling/packing.hpp"

namespace sapling::amplify {

const Tokenizer& amplify_tokenizer() {
  static const Tokenizer tokenizer(
      {"<pad>", "<unk>", "<mask>", "<bos>", "<eos>", "|", "L", "A", "G", "V", "S", "E", "R", "T",
       "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "B"},
      {"<bos>", "<eos>", "<pad>", "<mask>", "<unk>"});
  return tokenizer;
}

// ---------------------------------------------------------------- building blocks

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // float32 whatever the activation dtype, as AMPLIFY does (bf16 squares lose too much).
  const auto xf = x.to(torch::kFloat32);
  const auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (normed * weight.to(torch::kFloat32)).to(x.scalar_type());
}

SwiGLUImpl::SwiGLUImpl(int64_t dim, int64_t hidden_) : hidden(hidden_) {
  w12 = register_module("w12", torch::nn::Linear(torch::nn::LinearOptions(dim, 2 * hidden).bias(false)));
  w3 = register_module("w3", torch::nn::Linear(torch::nn::LinearOptions(hidden, dim).bias(false)));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  const auto packed = w12(x);
  const auto gate = packed.narrow(-1, 0, hidden);         // w1: SiLU branch
  const auto linear = packed.narrow(-1, hidden, hidden);  // w2: linear branch
  return w3(torch::silu(gate) * linear);
}

std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t length, int64_t head_dim, const torch::Device& device) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  // Same float32 arithmetic as the reference: 1 / 10000^(2k/d), angle = t * freq.
  const auto exponents = torch::arange(0, head_dim, 2, opts) / static_cast<double>(head_dim);
  const auto inv_freq = 1.0 / torch::pow(10000.0, exponents);
  const auto angles = torch::outer(torch::arange(length, opts), inv_freq);  // [T, Dh/2]
  return {torch::cos(angles), torch::sin(angles)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto head_dim = x.size(-1);
  auto pair_shape = x.sizes().vec();
  pair_shape.back() = head_dim / 2;
  pair_shape.push_back(2);
  const auto pairs = x.to(torch::kFloat32).reshape(pair_shape);
  const auto even = pairs.select(-1, 0);
  const auto odd = pairs.select(-1, 1);
  // (even + i odd) * (cos + i sin)
  const auto rotated = torch::stack({even * cos - odd * sin, even * sin + odd * cos}, -1);
  return rotated.flatten(-2).to(x.scalar_type());
}

EncoderBlockImpl::EncoderBlockImpl(const AmplifyConfig& config)
    : heads(config.num_attention_heads), head_dim(config.head_dim()) {
  const auto d = config.hidden_size;
  auto linear = [d](int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(d, out).bias(false)); };
  // Registration order follows AMPLIFY's EncoderBlock so parameter listings read alike.
  q = register_module("q", linear(d));
  k = register_module("k", linear(d));
  v = register_module("v", linear(d));
  wo = register_module("wo", linear(d));
  ffn = register_module("ffn", SwiGLU(d, config.swiglu_hidden()));
  attention_norm = register_module("attention_norm", RMSNorm(d, config.norm_eps));
  ffn_norm = register_module("ffn_norm", RMSNorm(d, config.norm_eps));
}

std::pair<torch::Tensor, torch::Tensor> EncoderBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask,
                                                                  const torch::Tensor& cos, const torch::Tensor& sin,
                                                                  bool need_weights) {
  const auto B = x.size(0);
  const auto T = x.size(1);
  const auto h = attention_norm(x);
  auto split_heads = [&](const torch::Tensor& t) { return t.view({B, T, heads, head_dim}).transpose(1, 2); };
  const auto qh = apply_rotary(split_heads(q(h)), cos, sin);
  const auto kh = apply_rotary(split_heads(k(h)), cos, sin);
  const auto vh = split_heads(v(h));
  auto att = attention(qh, kh, vh, key_mask, 1.0 / std::sqrt(static_cast<double>(head_dim)), need_weights);
  const auto merged = att.output.transpose(1, 2).reshape({B, T, heads * head_dim});
  auto out = x + wo(merged);
  out = out + ffn(ffn_norm(out));
  return {out, att.probs};
}

ContactHeadImpl::ContactHeadImpl(int64_t channels) {
  regression = register_module("regression", torch::nn::Linear(channels, 1));
}

// ---------------------------------------------------------------- the model

AmplifyModel::AmplifyModel(const AmplifyConfig& config) : config_(config) {
  config_.validate("amplify config");
  const auto d = config_.hidden_size;
  encoder = register_module(
      "encoder", torch::nn::Embedding(torch::nn::EmbeddingOptions(config_.vocab_size, d).padding_idx(config_.pad_token_id)));
  if (config_.layer_norm_after_embedding)
    layer_norm_1 = register_module("layer_norm_1", RMSNorm(d, config_.norm_eps));
  transformer_encoder = register_module("transformer_encoder", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) transformer_encoder->push_back(EncoderBlock(config_));
  if (config_.layer_norm_before_last_layer)
    layer_norm_2 = register_module("layer_norm_2", RMSNorm(d, config_.norm_eps));
  decoder = register_module("decoder", torch::nn::Linear(d, config_.vocab_size));
  contact_head =
      register_module("contact_head", ContactHead(config_.num_hidden_layers * config_.num_attention_heads));
  reset_parameters();
}

void AmplifyModel::reset_parameters() {
  torch::NoGradGuard no_grad;
  encoder->weight.uniform_(-config_.embedding_init_range, config_.embedding_init_range);
  encoder->weight[config_.pad_token_id].zero_();
  for (const auto& child : transformer_encoder->children()) {
    auto& block = *child->as<EncoderBlockImpl>();
    for (auto* linear : {&block.q, &block.k, &block.v, &block.wo, &block.ffn->w12, &block.ffn->w3})
      (*linear)->weight.uniform_(-config_.decoder_init_range, config_.decoder_init_range);
    block.attention_norm->weight.fill_(1.0);
    block.ffn_norm->weight.fill_(1.0);
  }
  if (layer_norm_1) layer_norm_1->weight.fill_(1.0);
  if (layer_norm_2) layer_norm_2->weight.fill_(1.0);
  decoder->weight.uniform_(-config_.decoder_init_range, config_.decoder_init_range);
  decoder->bias.zero_();
  contact_head->regression->reset_parameters();
  contact_head_trained_ = false;
}

EncoderOutput AmplifyModel::forward(const torch::Tensor& ids, const torch::Tensor& mask, const ForwardRequest& request) {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kInt64)
    fail("amplify: token ids must be an int64 tensor [batch, tokens], got ", ids.scalar_type(), " ", ids.sizes());
  if (!mask.defined() || mask.sizes() != ids.sizes())
    fail("amplify: mask must have the shape of the ids ", ids.sizes(), ", got ",
         mask.defined() ? mask.sizes() : torch::IntArrayRef{});
  const auto T = ids.size(1);
  if (T > config_.max_length)
    fail("amplify: ", T, " tokens exceed the model's max_length ", config_.max_length, " (crop the sequences)");
  if (ids.numel() > 0) {
    const auto lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      fail("amplify: token id out of range [0, ", config_.vocab_size, "): found ", lo < 0 ? lo : hi);
  }
  auto key_mask = mask.to(torch::kBool);

  EncoderOutput out;
  auto x = encoder(ids);
  if (layer_norm_1) x = layer_norm_1(x);
  auto [cos, sin] = rotary_tables(T, config_.head_dim(), x.device());
  if (request.segments.defined()) {  // packed rows: each protein's own positions, attention within it
    check_packed_request(request, ids, "amplify");
    const auto segments = request.segments.to(x.device());
    const auto positions = packed_positions(segments);
    cos = gather_positions(cos, positions);
    sin = gather_positions(sin, positions);
    key_mask = packed_attention_mask(segments);
  }
  const bool need_weights = request.attentions;
  for (const auto& child : transformer_encoder->children()) {
    auto [next, probs] = child->as<EncoderBlockImpl>()->forward(x, key_mask, cos, sin, need_weights);
    x = next;
    if (request.hidden_states) out.hidden_states.push_back(x);
    if (request.attentions) out.attentions.push_back(probs);
  }
  out.last_hidden = x;  // AMPLIFY returns the last block output, before the final norm
  if (request.logits) {
    // The vocabulary projection stays float32 under autocast: its logits become log-probabilities.
    AutocastPause full_precision;
    const auto h = (layer_norm_2 ? layer_norm_2(x) : x).to(decoder->weight.scalar_type());
    out.logits = decoder(h);
  }
  return out;
}

torch::Tensor AmplifyModel::representation(const EncoderOutput& out, int64_t layer) const {
  const auto L = config_.num_hidden_layers;
  if (static_cast<int64_t>(out.hidden_states.size()) != L)
    fail("amplify: representation() needs the hidden states of all ", L, " blocks (request hidden_states), got ",
         out.hidden_states.size());
  const int64_t index = layer < 0 ? L + 1 + layer : layer;
  if (index == 0)
    fail("amplify: layer ", layer, " is the embedding output, which AMPLIFY does not expose: its hidden states are "
         "the block outputs, layers 1..", L);
  if (index < 1 || index > L) fail("amplify: layer ", layer, " is out of range: use 1..", L, " or -1..-", L);
  return out.hidden_states[static_cast<size_t>(index - 1)];
}

torch::Tensor AmplifyModel::contacts(const EncoderOutput& out, const torch::Tensor& ids, const torch::Tensor& mask) {
  if (static_cast<int64_t>(out.attentions.size()) != config_.num_hidden_layers)
    fail("amplify: contacts() needs the attention maps of all ", config_.num_hidden_layers,
         " blocks (request attentions), got ", out.attentions.size());
  if (!contact_head_trained_ && !warned_untrained_contacts_) {
    warn("amplify: the contact head is untrained (randomly initialised): AMPLIFY checkpoints carry no "
         "contact_head.regression weights; train it, or load a checkpoint that has them, before trusting contacts");
    warned_untrained_contacts_ = true;
  }
  const auto features = attention_contact_features(out.attentions, ids, mask, kEosId);  // [B, L, L, C]
  auto& regression = *contact_head->regression;
  auto probs = torch::sigmoid(regression.forward(features.to(regression.weight.scalar_type())).squeeze(-1));
  // Zero the rows and columns of padding and of the eos of shorter sequences.
  const auto T = ids.size(1);
  const auto inner_ids = ids.slice(1, 1, T - 1);
  const auto residue = (mask.to(torch::kBool).slice(1, 1, T - 1) & inner_ids.ne(kEosId)).to(probs.scalar_type());
  return probs * residue.unsqueeze(1) * residue.unsqueeze(2);
}

SequenceEncoder::ParameterGroups AmplifyModel::parameter_groups() {
  ParameterGroups groups;
  for (const auto& p : named_parameters()) {
    if (!p.value().requires_grad() || p.key().rfind("contact_head.", 0) == 0) continue;
    (p.value().dim() < 2 ? groups.no_decay : groups.decay).push_back(p.value());
  }
  return groups;
}

}  // namespace sapling::amplify
