// ESM2 as torch modules whose parameter names are the HF checkpoint keys, and the SequenceEncoder on top.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sapling/interfaces.hpp"  // for SequenceEncoder
#include "sapling/tokenizer.hpp"

namespace sapling::esm2 {

// What config.json says (HF EsmConfig fields this model uses).
struct Esm2Config {
  int64_t vocab_size = 33;
  int64_t hidden_size = 320;
  int64_t num_layers = 6;
  int64_t num_heads = 20;
  int64_t intermediate_size = 1280;
  double layer_norm_eps = 1e-5;
  bool token_dropout = true;
  int64_t max_position_embeddings = 1026;  // tokens, specials included
  int64_t pad_token_id = 1;
  int64_t mask_token_id = 32;
  int64_t eos_token_id = 2;
  double rope_theta = 10000.0;

  int64_t head_dim() const { return hidden_size / num_heads; }
  bool same_shape(const Esm2Config& o) const {
    return vocab_size == o.vocab_size && hidden_size == o.hidden_size && num_layers == o.num_layers &&
           num_heads == o.num_heads && intermediate_size == o.intermediate_size;
  }
};

// Config of a released size (see esm2_presets.hpp); fails for unknown names.
Esm2Config preset_config(const std::string& name);
// Checks internal consistency (heads divide width, even head dim, ...); `where` prefixes errors.
void validate_config(const Esm2Config& config, const std::string& where);

// The 33-token ESM alphabet in id order.
const std::vector<std::string>& esm2_vocabulary();

// Rotary position embedding, rotate-half layout over the full head dim. The
// per-layer `inv_freq` buffer is loaded from checkpoints when present: ESM2
// was trained in fp16 and the stored values carry that rounding.
struct RotaryEmbeddingImpl : torch::nn::Module {
  RotaryEmbeddingImpl(int64_t head_dim, double base, int64_t cache_positions);
  // q, k: [B, H, T, Dh]; returns rotated copies in the inputs' dtype.
  // positions [B, T] (packed rows), or undefined for 0..T-1 in every row.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& positions = {});

  torch::Tensor inv_freq;

 private:
  void refresh_cache(int64_t positions);
  // cos/sin tables [positions, Dh], rebuilt only when the buffer changes
  // (load, device or dtype move) or a longer sequence arrives.
  torch::Tensor cos_, sin_;
  int64_t cached_version_ = -1;
  int64_t cache_positions_;
};
TORCH_MODULE(RotaryEmbedding);

// `attention.self`: projections and rotary.
struct SelfAttentionImpl : torch::nn::Module {
  explicit SelfAttentionImpl(const Esm2Config& c);
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  RotaryEmbedding rotary_embeddings{nullptr};
};
TORCH_MODULE(SelfAttention);

// A lone `dense` Linear: HF's attention.output, intermediate and output blocks.
struct DenseImpl : torch::nn::Module {
  DenseImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x) { return dense(x); }
  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(Dense);

struct AttentionBlockImpl : torch::nn::Module {
  explicit AttentionBlockImpl(const Esm2Config& c);
  SelfAttention self{nullptr};
  Dense output{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // pre-attention norm (HF name)
};
TORCH_MODULE(AttentionBlock);

struct LayerImpl : torch::nn::Module {
  explicit LayerImpl(const Esm2Config& c);
  // x: [B, T, D] residual stream; key_mask [B, T] or a pair mask [B, 1, T, T]
  // (packed rows, with their positions [B, T]). `probs` receives the softmax
  // attention when non-null.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask, torch::Tensor* probs,
                        const torch::Tensor& positions = {});

  AttentionBlock attention{nullptr};
  Dense intermediate{nullptr}, output{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // pre-FFN norm (HF name)
  int64_t num_heads, head_dim;
};
TORCH_MODULE(Layer);

struct EmbeddingsImpl : torch::nn::Module {
  explicit EmbeddingsImpl(const Esm2Config& c);
  torch::nn::Embedding word_embeddings{nullptr};
};
TORCH_MODULE(Embeddings);

struct EncoderStackImpl : torch::nn::Module {
  explicit EncoderStackImpl(const Esm2Config& c);
  torch::nn::ModuleList layer{nullptr};
  torch::nn::LayerNorm emb_layer_norm_after{nullptr};
};
TORCH_MODULE(EncoderStack);

struct ContactHeadImpl : torch::nn::Module {
  explicit ContactHeadImpl(const Esm2Config& c);
  torch::nn::Linear regression{nullptr};  // layers*heads -> 1
};
TORCH_MODULE(ContactHead);

// `esm`: everything but the LM head.
struct EsmImpl : torch::nn::Module {
  explicit EsmImpl(const Esm2Config& c);
  Embeddings embeddings{nullptr};
  EncoderStack encoder{nullptr};
  ContactHead contact_head{nullptr};
  std::vector<Layer> layers;  // typed views of encoder->layer
};
TORCH_MODULE(Esm);

// `lm_head`: dense -> GELU -> LayerNorm -> x E^T + bias (decoder tied to E).
struct LMHeadImpl : torch::nn::Module {
  explicit LMHeadImpl(const Esm2Config& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& embedding_weight);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};
  torch::Tensor bias;
};
TORCH_MODULE(LMHead);

class Esm2Encoder : public SequenceEncoder {
 public:
  // `token_dropout`, when set, overrides what config.json / the preset says.
  Esm2Encoder(const Esm2Config& config, std::optional<bool> token_dropout_override);

  std::string family() const override { return "esm2"; }
  const Tokenizer& tokenizer() const override { return tokenizer_; }
  int64_t hidden_size() const override { return config_.hidden_size; }
  int64_t num_layers() const override { return config_.num_layers; }
  int64_t num_heads() const override { return config_.num_heads; }
  // Rotary positions: no learned limit (the published training crops at 2046 residues).
  int64_t max_tokens() const override { return kNoTokenLimit; }
  // ESM2 was pretrained on crops of 1024 tokens (fair-esm's esm-extract truncates at 1022 residues).
  int64_t pretrained_tokens() const override { return std::min<int64_t>(1024, config_.max_position_embeddings); }
  bool supports_packing() const override { return true; }

  EncoderOutput forward(const torch::Tensor& ids, const torch::Tensor& mask, const ForwardRequest& request) override;
  torch::Tensor representation(const EncoderOutput& out, int64_t layer) const override;
  torch::Tensor contacts(const EncoderOutput& out, const torch::Tensor& ids, const torch::Tensor& mask) override;

  void load_pretrained(const std::filesystem::path& dir) override;
  void save_pretrained(const std::filesystem::path& dir) const override;
  // EsmTokenizer files (vocab.txt, ...) as the released facebook/esm2_* folders carry them.
  void save_tokenizer(const std::filesystem::path& dir) const override;
  // facebookresearch/esm code and weights are released under MIT.
  CardFacts card_facts() const override { return {"mit", false, ""}; }
  // The contact regression is left out: no training loss reaches it, and an
  // optimiser holding it would still decay it (PyTorch skips gradient-less parameters).
  ParameterGroups parameter_groups() override;

  const Esm2Config& config() const { return config_; }

 private:
  // Embedding lookup with ESM2's token-dropout rescale (per protein: per row,
  // or per segment of a packed row), pad rows zeroed.
  torch::Tensor embed(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& segments);

  Esm2Config config_;
  std::optional<bool> token_dropout_override_;
  Tokenizer tokenizer_;
  Esm esm_{nullptr};
  LMHead lm_head_{nullptr};
};

}  // namespace sapling::esm2
