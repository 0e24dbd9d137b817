// AMPLIFY model: configuration, modules named like the checkpoint keys, and the SequenceEncoder.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "sapling/interfaces.hpp"  // for SequenceEncoder
#include "sapling/tokenizer.hpp"

namespace sapling::amplify {

// The fields of AMPLIFY's config.json / config.yaml that shape the network.
// Defaults are those of the released models; sizes have no default.
struct AmplifyConfig {
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;  // as written in the config; see swiglu_hidden()
  double norm_eps = 1e-5;
  bool layer_norm_after_embedding = false;
  bool layer_norm_before_last_layer = true;
  int64_t vocab_size = 27;
  int64_t pad_token_id = 0;
  int64_t max_length = 2048;
  // Initialisation ranges (uniform +-range), used only for random init.
  double embedding_init_range = 0.02;
  double decoder_init_range = 0.02;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // AMPLIFY's SwiGLU width: int(2 * intermediate / 3) rounded up to a multiple of 8.
  int64_t swiglu_hidden() const;
  bool same_architecture(const AmplifyConfig& other) const;
  // Throws naming `source` when sizes are inconsistent (heads not dividing hidden, odd head dim...).
  void validate(const std::string& source) const;

  // The released sizes: "AMPLIFY_120M", "AMPLIFY_350M".
  static AmplifyConfig preset(const std::string& name);
  // Parses config.json text (HF layout) or the original flat config.yaml text.
  static AmplifyConfig from_json_text(const std::string& text, const std::string& source);
  static AmplifyConfig from_yaml_text(const std::string& text, const std::string& source);
  // Reads `dir`/config.json, else `dir`/config.yaml.
  static AmplifyConfig read(const std::filesystem::path& dir);
  std::string to_json_text() const;
  // config.json as a saved folder carries it: the config, `architectures`, the weights' dtype and, when the
  // folder has the release's modelling code (`with_code`), the `auto_map` that names it.
  void write_json(const std::filesystem::path& file, const std::string& dtype, bool with_code) const;
};

// The 27-token AMPLIFY vocabulary (<pad> <unk> <mask> <bos> <eos> | then residues).
const Tokenizer& amplify_tokenizer();
constexpr int64_t kEosId = 4;
// A trained contact head, beside model.safetensors (the release's model class has none).
inline constexpr const char* kContactHeadFile = "contact_head.safetensors";

// RMSNorm: x * rsqrt(mean(x^2) + eps) * weight, in float32, cast back to x's dtype.
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// SwiGLU with a packed first projection: w12 rows [0,h) feed SiLU, rows [h,2h) are the gate's
// linear branch; output w3(silu(x w1^T) * (x w2^T)).
struct SwiGLUImpl : torch::nn::Module {
  SwiGLUImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear w12{nullptr}, w3{nullptr};
  int64_t hidden;
};
TORCH_MODULE(SwiGLU);

// Interleaved (Llama) rotary tables for positions 0..length-1: cos and sin [length, head_dim/2], float32.
std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t length, int64_t head_dim, const torch::Device& device);
// Rotates pairs (x[2k], x[2k+1]) of x [B, H, T, Dh] in float32; returns x's dtype.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// One pre-norm transformer block: x += wo(attn(norm_a(x))); x += ffn(norm_f(x)).
struct EncoderBlockImpl : torch::nn::Module {
  explicit EncoderBlockImpl(const AmplifyConfig& config);
  // Returns the block output and, when need_weights, the softmax maps [B, H, T, T] (float32).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& key_mask,
                                                  const torch::Tensor& cos, const torch::Tensor& sin,
                                                  bool need_weights);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, wo{nullptr};
  RMSNorm attention_norm{nullptr}, ffn_norm{nullptr};
  SwiGLU ffn{nullptr};
  int64_t heads, head_dim;
};
TORCH_MODULE(EncoderBlock);

// ESM-style contact regression over symmetrised, APC-corrected attention maps. AMPLIFY releases
// no such head: it is randomly initialised (untrained) unless a checkpoint carries its weights.
struct ContactHeadImpl : torch::nn::Module {
  explicit ContactHeadImpl(int64_t channels);
  torch::nn::Linear regression{nullptr};
};
TORCH_MODULE(ContactHead);

class AmplifyModel : public SequenceEncoder {
 public:
  explicit AmplifyModel(const AmplifyConfig& config);

  std::string family() const override { return "amplify"; }
  const Tokenizer& tokenizer() const override { return amplify_tokenizer(); }
  int64_t hidden_size() const override { return config_.hidden_size; }
  int64_t num_layers() const override { return config_.num_hidden_layers; }
  int64_t num_heads() const override { return config_.num_attention_heads; }
  int64_t max_tokens() const override { return config_.max_length; }
  bool supports_packing() const override { return true; }
  const AmplifyConfig& config() const { return config_; }

  EncoderOutput forward(const torch::Tensor& ids, const torch::Tensor& mask, const ForwardRequest& request) override;
  torch::Tensor representation(const EncoderOutput& out, int64_t layer) const override;
  torch::Tensor contacts(const EncoderOutput& out, const torch::Tensor& ids, const torch::Tensor& mask) override;

  void load_pretrained(const std::filesystem::path& dir) override;  // amplify_checkpoint.cpp
  void save_pretrained(const std::filesystem::path& dir) const override;
  // A PreTrainedTokenizerFast (tokenizer.json, ...) as chandar-lab/AMPLIFY_* folders carry it.
  void save_tokenizer(const std::filesystem::path& dir) const override;
  // chandar-lab/AMPLIFY is released under MIT; its model class is not part of transformers.
  CardFacts card_facts() const override {
    if (!modelling_files_.empty())
      return {"mit", true,
              "AMPLIFY's model class is not part of transformers: this folder carries the base release's modelling "
              "code (copied from the folder the model was loaded from), which `config.json`'s `auto_map` names; "
              "`trust_remote_code=True` runs it. A trained contact head is in `contact_head.safetensors`, read by "
              "sapling only. The tokenizer loads as it is."};
    return {"mit", true,
            "AMPLIFY's model class is not part of transformers, and the base folder had no modelling code to copy: "
            "put the release's `amplify.py`, `rmsnorm.py` and `rotary.py` (from chandar-lab/AMPLIFY_120M) into this "
            "folder and add to `config.json` the entry `\"auto_map\": {\"AutoConfig\": \"amplify.AMPLIFYConfig\", "
            "\"AutoModel\": \"amplify.AMPLIFY\", \"AutoModelForMaskedLM\": \"amplify.AMPLIFY\"}` before loading it "
            "with `trust_remote_code=True` (or train from a base folder that has the code: sapling copies it). A "
            "contact head is in `contact_head.safetensors`, read by sapling only. The tokenizer loads as it is."};
  }
  // The default groups without the contact head, which no training loss reaches (as ESM2's).
  ParameterGroups parameter_groups() override;
  // Whether contact_head.regression came from a checkpoint (false: untrained random init).
  bool contact_head_trained() const { return contact_head_trained_; }

  // AMPLIFY's initialisation: uniform(+-range) for linear and embedding weights, zero biases, unit norms.
  void reset_parameters();

 private:
  AmplifyConfig config_;
  torch::nn::Embedding encoder{nullptr};
  RMSNorm layer_norm_1{nullptr};  // only when layer_norm_after_embedding
  torch::nn::ModuleList transformer_encoder{nullptr};
  RMSNorm layer_norm_2{nullptr};  // only when layer_norm_before_last_layer
  torch::nn::Linear decoder{nullptr};
  ContactHead contact_head{nullptr};
  bool contact_head_trained_ = false;
  // The base folder's modelling code (*.py), copied into every folder this model is saved to.
  std::vector<std::filesystem::path> modelling_files_;
  bool warned_untrained_contacts_ = false;
};

}  // namespace sapling::amplify
