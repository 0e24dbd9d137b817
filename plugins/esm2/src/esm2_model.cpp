// ESM2 forward pass (token-dropout rescale, pre-LN rotary transformer, LM head) and contact prediction.
#include "esm2_model.hpp"

#include <algorithm>
#include <cmath>

#include "esm2_presets.hpp"
#include "sapling/attention.hpp"
#include "sapling/autocast.hpp"
#include "sapling/contacts.hpp"
#include "sapling/error.hpp"
#include "sapling/packing.hpp"

namespace sapling::esm2 {

namespace F = torch::nn::functional;

const std::vector<std::string>& esm2_vocabulary() {
  static const std::vector<std::string> vocab = {
      "<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R",        "T",
      "I",     "D",     "P",     "K",     "Q", "N", "F", "Y", "M", "H", "W",        "C",
      "X",     "B",     "U",     "Z",     "O", ".", "-", "<null_1>", "<mask>"};
  return vocab;
}

Esm2Config preset_config(const std::string& name) {
  for (const auto& p : esm2_presets()) {
    if (name != p.name) continue;
    Esm2Config c;
    c.num_layers = p.layers;
    c.hidden_size = p.hidden_size;
    c.num_heads = p.heads;
    c.intermediate_size = 4 * p.hidden_size;
    return c;
  }
  fail("esm2: unknown preset '", name, "'", did_you_mean(name, esm2_preset_names()));
}

void validate_config(const Esm2Config& c, const std::string& where) {
  const auto positive = [&](int64_t v, const char* key) {
    if (v <= 0) fail(where, ": '", key, "' must be positive, found ", v);
  };
  positive(c.hidden_size, "hidden_size");
  positive(c.num_layers, "num_hidden_layers");
  positive(c.num_heads, "num_attention_heads");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.max_position_embeddings, "max_position_embeddings");
  // The rotary cache holds max_position_embeddings x head_dim values per layer:
  // an absurd value would allocate gigabytes at the first forward pass.
  if (c.max_position_embeddings > (int64_t{1} << 20))
    fail(where, ": 'max_position_embeddings' ", c.max_position_embeddings, " is larger than the supported 1048576");
  if (c.hidden_size % c.num_heads != 0)
    fail(where, ": hidden_size ", c.hidden_size, " is not divisible by num_attention_heads ", c.num_heads);
  if (c.head_dim() % 2 != 0) fail(where, ": head dim ", c.head_dim(), " must be even for rotary embeddings");
  const auto& vocab = esm2_vocabulary();
  if (c.vocab_size != static_cast<int64_t>(vocab.size()))
    fail(where, ": vocab_size ", c.vocab_size, " but the ESM2 alphabet has ", vocab.size(), " tokens");
  const auto expect_id = [&](int64_t id, const char* key, const char* token) {
    if (id < 0 || id >= c.vocab_size || vocab[static_cast<size_t>(id)] != token)
      fail(where, ": '", key, "' is ", id, " but ", token, " is token ", std::find(vocab.begin(), vocab.end(), token) - vocab.begin(),
           " in the ESM2 alphabet");
  };
  expect_id(c.pad_token_id, "pad_token_id", "<pad>");
  expect_id(c.mask_token_id, "mask_token_id", "<mask>");
  expect_id(c.eos_token_id, "eos_token_id", "<eos>");
  if (!(c.layer_norm_eps > 0)) fail(where, ": 'layer_norm_eps' must be positive");
  if (!(c.rope_theta > 0)) fail(where, ": 'rope_theta' must be positive");
}

// ---------------------------------------------------------------- rotary

RotaryEmbeddingImpl::RotaryEmbeddingImpl(int64_t head_dim, double base, int64_t cache_positions)
    : cache_positions_(cache_positions) {
  // inv_freq[i] = base^(-2i/Dh), computed as the reference does (float32 powers).
  auto exponents = torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(head_dim);
  inv_freq = register_buffer("inv_freq", torch::reciprocal(torch::pow(base, exponents)));
}

void RotaryEmbeddingImpl::refresh_cache(int64_t positions) {
  torch::NoGradGuard no_grad;
  auto t = torch::arange(positions, inv_freq.options());
  auto freqs = torch::outer(t, inv_freq);
  auto angles = torch::cat({freqs, freqs}, -1);  // rotate-half layout: [f0..f(D/2-1), f0..f(D/2-1)]
  cos_ = angles.cos();
  sin_ = angles.sin();
  cached_version_ = inv_freq._version();
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbeddingImpl::forward(const torch::Tensor& q, const torch::Tensor& k,
                                                                     const torch::Tensor& positions) {
  const int64_t T = q.size(2);
  if (!cos_.defined() || cos_.size(0) < T || cos_.device() != inv_freq.device() ||
      cos_.scalar_type() != inv_freq.scalar_type() || cached_version_ != inv_freq._version())
    refresh_cache(std::max(T, cache_positions_));
  torch::Tensor cos, sin;
  if (positions.defined()) {  // packed rows: each protein's own positions, [B, 1, T, Dh]
    cos = gather_positions(cos_, positions);
    sin = gather_positions(sin_, positions);
  } else {
    cos = cos_.slice(0, 0, T);
    sin = sin_.slice(0, 0, T);
  }
  const int64_t half = q.size(-1) / 2;
  const auto rotate = [&](const torch::Tensor& x) {
    auto rotated_half = torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
    return (x * cos + rotated_half * sin).to(x.scalar_type());
  };
  return {rotate(q), rotate(k)};
}

// ---------------------------------------------------------------- layers

SelfAttentionImpl::SelfAttentionImpl(const Esm2Config& c) {
  query = register_module("query", torch::nn::Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", torch::nn::Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", torch::nn::Linear(c.hidden_size, c.hidden_size));
  rotary_embeddings =
      register_module("rotary_embeddings", RotaryEmbedding(c.head_dim(), c.rope_theta, c.max_position_embeddings));
}

DenseImpl::DenseImpl(int64_t in, int64_t out) { dense = register_module("dense", torch::nn::Linear(in, out)); }

static torch::nn::LayerNorm make_layer_norm(const Esm2Config& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

AttentionBlockImpl::AttentionBlockImpl(const Esm2Config& c) {
  self = register_module("self", SelfAttention(c));
  output = register_module("output", Dense(c.hidden_size, c.hidden_size));
  LayerNorm = register_module("LayerNorm", make_layer_norm(c));
}

LayerImpl::LayerImpl(const Esm2Config& c) : num_heads(c.num_heads), head_dim(c.head_dim()) {
  attention = register_module("attention", AttentionBlock(c));
  intermediate = register_module("intermediate", Dense(c.hidden_size, c.intermediate_size));
  output = register_module("output", Dense(c.intermediate_size, c.hidden_size));
  LayerNorm = register_module("LayerNorm", make_layer_norm(c));
}

torch::Tensor LayerImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask, torch::Tensor* probs,
                                 const torch::Tensor& positions) {
  const int64_t B = x.size(0), T = x.size(1);
  const auto heads = [&](const torch::Tensor& t) { return t.view({B, T, num_heads, head_dim}).transpose(1, 2); };
  auto& sa = *attention->self;
  auto h = attention->LayerNorm(x);
  // ESM2 scales q before the rotation, so attention() gets scale 1.
  auto q = heads(sa.query(h) * std::pow(static_cast<double>(head_dim), -0.5));
  auto k = heads(sa.key(h));
  auto v = heads(sa.value(h));
  std::tie(q, k) = sa.rotary_embeddings(q, k, positions);
  auto att = sapling::attention(q, k, v, key_mask, 1.0, probs != nullptr);
  if (probs) *probs = att.probs;
  auto context = att.output.transpose(1, 2).reshape({B, T, num_heads * head_dim});
  auto y = x + attention->output(context);
  return y + output(F::gelu(intermediate(LayerNorm(y))));  // exact erf GELU (the default)
}

EmbeddingsImpl::EmbeddingsImpl(const Esm2Config& c) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
}

EncoderStackImpl::EncoderStackImpl(const Esm2Config& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) layer->push_back(Layer(c));
  emb_layer_norm_after = register_module("emb_layer_norm_after", make_layer_norm(c));
}

ContactHeadImpl::ContactHeadImpl(const Esm2Config& c) {
  regression = register_module("regression", torch::nn::Linear(c.num_layers * c.num_heads, 1));
}

EsmImpl::EsmImpl(const Esm2Config& c) {
  embeddings = register_module("embeddings", Embeddings(c));
  encoder = register_module("encoder", EncoderStack(c));
  contact_head = register_module("contact_head", ContactHead(c));
  for (const auto& m : *encoder->layer) layers.emplace_back(std::dynamic_pointer_cast<LayerImpl>(m));
}

LMHeadImpl::LMHeadImpl(const Esm2Config& c) {
  dense = register_module("dense", torch::nn::Linear(c.hidden_size, c.hidden_size));
  layer_norm = register_module("layer_norm", make_layer_norm(c));
  bias = register_parameter("bias", torch::zeros({c.vocab_size}));
}

torch::Tensor LMHeadImpl::forward(const torch::Tensor& x, const torch::Tensor& embedding_weight) {
  // Under bf16 autocast `dense` returns bf16; the GELU and the LayerNorm take the norm's own dtype. LibTorch 2.x's
  // autocast would cast the norm's input itself; 1.x's CPU autocast leaves layer_norm uncast and its kernel refuses
  // bf16 input with float32 weights, so the cast stays for the 1.13 build (and is the identity in bf16-pure).
  auto h = layer_norm(F::gelu(dense(x).to(layer_norm->weight.scalar_type())));
  // The vocabulary projection stays float32 under autocast: its logits become log-probabilities (MLM loss,
  // perplexity, variant scores), and it is a small product ([T, D] x [D, 33]).
  AutocastPause full_precision;
  return F::linear(h, embedding_weight.to(h.scalar_type()), bias.to(h.scalar_type()));
}

// HF's EsmPreTrainedModel init: N(0, 0.02) weights, zero biases, unit norms,
// zero padding embedding row. Rotary buffers keep their computed values.
static void init_like_hf(torch::nn::Module& root, int64_t pad_id) {
  torch::NoGradGuard no_grad;
  for (auto& m : root.modules(/*include_self=*/false)) {  // self needs shared_from_this
    if (auto* linear = m->as<torch::nn::Linear>()) {
      linear->weight.normal_(0.0, 0.02);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* emb = m->as<torch::nn::Embedding>()) {
      emb->weight.normal_(0.0, 0.02);
      emb->weight[pad_id].zero_();
    } else if (auto* norm = m->as<torch::nn::LayerNorm>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
}

// ---------------------------------------------------------------- encoder

Esm2Encoder::Esm2Encoder(const Esm2Config& config, std::optional<bool> token_dropout_override)
    : config_(config),
      token_dropout_override_(token_dropout_override),
      tokenizer_(esm2_vocabulary(), {"<cls>", "<eos>", "<pad>", "<mask>", "<unk>"}) {
  validate_config(config_, "esm2");
  if (token_dropout_override_) config_.token_dropout = *token_dropout_override_;
  esm_ = register_module("esm", Esm(config_));
  lm_head_ = register_module("lm_head", LMHead(config_));
  init_like_hf(*this, config_.pad_token_id);
}

torch::Tensor Esm2Encoder::embed(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& segments) {
  auto x = esm_->embeddings->word_embeddings(ids);
  if (config_.token_dropout) {
    // Training masked 15% x 80% of tokens to <mask> with zero embedding; the
    // rescale keeps the activation scale of that regime at any mask ratio.
    const auto is_mask = ids.eq(config_.mask_token_id);
    x = x.masked_fill(is_mask.unsqueeze(-1), 0.0);
    constexpr double train_ratio = 0.15 * 0.8;
    if (segments.defined()) {  // the ratio of each protein in a packed row, per token
      // A row's pad is a run of its own with no real token: 1, not 0, keeps 0/0 (NaN) out of the pad rows.
      const auto n_real = segment_sum(mask.to(torch::kInt64), segments).clamp_min(1);
      const auto observed = segment_sum(is_mask.to(torch::kInt64), segments).to(torch::kFloat32) / n_real;
      x = (x * (1.0 - train_ratio) / (1.0 - observed).unsqueeze(-1)).to(x.scalar_type());
    } else {
      const auto n_real = mask.sum(-1);
      const auto observed = is_mask.sum(-1).to(torch::kFloat32) / n_real;
      x = (x * (1.0 - train_ratio) / (1.0 - observed).view({-1, 1, 1})).to(x.scalar_type());
    }
  }
  return x * mask.unsqueeze(-1).to(x.scalar_type());
}

SequenceEncoder::ParameterGroups Esm2Encoder::parameter_groups() {
  ParameterGroups groups;
  for (const auto& p : named_parameters()) {
    if (!p.value().requires_grad() || p.key().find("contact_head.") != std::string::npos) continue;
    (p.value().dim() < 2 ? groups.no_decay : groups.decay).push_back(p.value());
  }
  return groups;
}

EncoderOutput Esm2Encoder::forward(const torch::Tensor& ids_in, const torch::Tensor& mask_in,
                                   const ForwardRequest& request) {
  if (ids_in.dim() != 2 || mask_in.sizes() != ids_in.sizes())
    fail("esm2: forward expects ids [B, T] and a mask of the same shape, got ids ", ids_in.sizes(), " and mask ",
         mask_in.sizes());
  const auto device = esm_->embeddings->word_embeddings->weight.device();
  const auto ids = ids_in.to(device, torch::kInt64);
  const auto mask = mask_in.to(device, torch::kBool);

  EncoderOutput out;
  torch::Tensor segments, positions, key_mask = mask;
  if (request.segments.defined()) {
    check_packed_request(request, ids_in, "esm2");
    segments = request.segments.to(device);
    positions = packed_positions(segments);
    key_mask = packed_attention_mask(segments);
  }
  auto x = embed(ids, mask, segments);
  if (request.hidden_states) out.hidden_states.reserve(static_cast<size_t>(config_.num_layers) + 1);
  if (request.attentions) out.attentions.reserve(static_cast<size_t>(config_.num_layers));
  torch::Tensor probs;
  for (auto& layer : esm_->layers) {
    if (request.hidden_states) out.hidden_states.push_back(x);
    x = layer->forward(x, key_mask, request.attentions ? &probs : nullptr, positions);
    if (request.attentions) out.attentions.push_back(probs);
  }
  out.last_hidden = esm_->encoder->emb_layer_norm_after(x);
  if (request.hidden_states) out.hidden_states.push_back(out.last_hidden);
  if (request.logits) out.logits = lm_head_->forward(out.last_hidden, esm_->embeddings->word_embeddings->weight);
  return out;
}

torch::Tensor Esm2Encoder::representation(const EncoderOutput& out, int64_t layer) const {
  const int64_t L = config_.num_layers;
  const int64_t index = layer < 0 ? L + 1 + layer : layer;
  if (index < 0 || index > L) fail("esm2: representation layer ", layer, " is outside 0..", L, " (or -", L + 1, "..-1)");
  if (index == L && out.last_hidden.defined()) return out.last_hidden;
  if (out.hidden_states.size() != static_cast<size_t>(L) + 1)
    fail("esm2: representation(", layer, ") needs hidden states: set ForwardRequest.hidden_states");
  return out.hidden_states[static_cast<size_t>(index)];
}

torch::Tensor Esm2Encoder::contacts(const EncoderOutput& out, const torch::Tensor& ids_in, const torch::Tensor& mask_in) {
  if (out.attentions.size() != static_cast<size_t>(config_.num_layers))
    fail("esm2: contacts need the attention maps of all ", config_.num_layers,
         " layers: set ForwardRequest.attentions");
  const auto device = out.attentions.front().device();
  const auto ids = ids_in.to(device, torch::kInt64);
  const auto mask = mask_in.to(device, torch::kBool);
  auto& regression = esm_->contact_head->regression;
  auto features = attention_contact_features(out.attentions, ids, mask, config_.eos_token_id);
  auto probs = torch::sigmoid(regression(features.to(regression->weight.scalar_type())).squeeze(-1));
  // Rows and columns of pad (and of eos, where a shorter sequence has it) are not residues.
  const int64_t T = ids.size(1);
  auto residue = (mask & ids.ne(config_.eos_token_id)).slice(1, 1, T - 1).to(probs.scalar_type());
  return probs * residue.unsqueeze(1) * residue.unsqueeze(2);
}

}  // namespace sapling::esm2
