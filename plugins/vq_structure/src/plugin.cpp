// The vq_structure plugin: a trainable VQ-VAE structure tokenizer (codes of each residue's backbone environment).
#include <ATen/CPUGeneratorImpl.h>

#include <memory>
#include <string>
#include <vector>

#include "features.hpp"
#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "vq_model.hpp"

namespace sapling::vq {
namespace {

// The architecture comes from the weights file when one is given; an option set explicitly to another value
// is a mistake worth stopping for (tokens of another codebook would silently mean something else).
VqArchitecture resolve_architecture(const Options& options) {
  VqArchitecture a;
  a.codebook_size = options.get_int("codebook_size");
  a.latent_dim = options.get_int("latent_dim");
  a.hidden_dim = options.get_int("hidden_dim");
  a.neighbours = options.get_int("neighbours");
  if (!options.has("weights")) return a;
  const std::filesystem::path file = options.get_path("weights");
  const VqArchitecture stored = VqModelImpl::read_architecture(file);
  const std::pair<const char*, int64_t> pairs[] = {{"codebook_size", stored.codebook_size},
                                                   {"latent_dim", stored.latent_dim},
                                                   {"hidden_dim", stored.hidden_dim},
                                                   {"neighbours", stored.neighbours}};
  for (const auto& [key, value] : pairs)
    if (options.origin(key) != "default" && options.get_int(key) != value)
      fail(file.string(), ": metadata key '", key, "' is ", value, " but option ", key, " = ", options.get_int(key), " (",
           options.origin(key), "); the architecture comes from the weights file: drop the option or give weights "
           "trained with that ", key);
  return stored;
}

class VqStructureTokenizer final : public StructureTokenizer, public TrainableTokenizer {
 public:
  explicit VqStructureTokenizer(const Options& options)
      : weights_(options.has("weights") ? options.get_path("weights") : std::filesystem::path()),
        allow_untrained_(options.get_bool("allow_untrained")),
        min_confidence_(options.get_float("min_confidence")) {
    VqTraining training;
    training.beta = options.get_float("beta");
    training.decay = options.get_float("decay");
    training.restart_after = options.get_int("restart_after");
    model_ = std::make_shared<VqModelImpl>(resolve_architecture(options), training,
                                           static_cast<uint64_t>(options.get_int("seed")));
    if (!weights_.empty()) model_->load(weights_);
    model_->eval();  // tokenising; `train-tokenizer` switches to training through set_training()
  }

  int64_t num_states() const override { return model_->architecture.codebook_size; }
  // One past the last code: never a real code, so training ignores masked residues (their target is -100)
  // instead of learning them as a state.
  int64_t mask_state() const override { return num_states(); }
  std::string symbol(int64_t state) const override {
    if (state == mask_state()) return "-";
    if (state < 0 || state > mask_state()) fail("vq_structure: state ", state, " is not in 0..", num_states(), " (", num_states(), " = mask)");
    return std::to_string(state);
  }
  std::string file_tag() const override { return "vq"; }

  std::vector<int64_t> encode(const ChainStructure& chain) const override {
    if (weights_.empty() && !allow_untrained_ && !model_->initialised())
      fail("vq_structure: no weights; set the tokenizer option weights=FILE (a file from `sapling train-tokenizer`), "
           "or allow_untrained=true for random codes");
    const ResidueFeatures features = residue_features(chain, model_->architecture.neighbours);
    std::vector<int64_t> states(static_cast<size_t>(chain.length()), mask_state());
    const torch::Tensor rows = features.valid.nonzero().squeeze(1);
    if (rows.numel() == 0) return states;
    // One batched forward over the chain's encodable residues.
    const torch::Tensor found = model_->codes(features.values.index_select(0, rows)).contiguous();
    const torch::Tensor where = rows.contiguous();
    const int64_t* code = found.data_ptr<int64_t>();
    const int64_t* at = where.data_ptr<int64_t>();
    for (int64_t k = 0; k < found.numel(); ++k) states[static_cast<size_t>(at[k])] = code[k];
    // Low-confidence residues (B-factor / pLDDT below the threshold) are masked, as foldseek_3di does.
    if (min_confidence_ > 0 && chain.bfactor.defined() && chain.bfactor.numel() == chain.length()) {
      const torch::Tensor b = chain.bfactor.to(torch::kFloat32).contiguous();
      const float* value = b.data_ptr<float>();
      for (int64_t i = 0; i < chain.length(); ++i)
        if (value[i] < min_confidence_) states[static_cast<size_t>(i)] = mask_state();
    }
    return states;
  }

  TrainableTokenizer* trainable() override { return this; }

  std::vector<torch::Tensor> parameters() override { return model_->parameters(); }
  void set_training(bool on) override { model_->train(on); }

  torch::Tensor loss(const std::vector<ChainStructure>& batch, at::Generator& generator,
                     std::map<std::string, double>& stats) override {
    const torch::Tensor raw = batch_features(batch);
    if (raw.size(0) == 0) fail("vq_structure: a training batch of ", batch.size(), " chains has no residue with N, CA and C");
    const LossParts parts = model_->loss(raw, generator);
    stats["reconstruction"] = parts.reconstruction;
    stats["commitment"] = parts.commitment;
    stats["restarted"] = static_cast<double>(parts.restarted);
    stats["residues"] = static_cast<double>(raw.size(0));
    return parts.loss;
  }

  std::map<std::string, double> evaluate(const std::vector<ChainStructure>& chains) override {
    const Quality q = model_->quality(batch_features(chains));
    return {{"reconstruction", q.reconstruction}, {"usage", q.usage}, {"perplexity", q.perplexity},
            {"residues", static_cast<double>(q.residues)}};
  }

  void save_weights(const std::filesystem::path& file) const override { model_->save(file); }

 private:
  // Features of the encodable residues of every chain, stacked [N, F].
  torch::Tensor batch_features(const std::vector<ChainStructure>& chains) const {
    std::vector<torch::Tensor> rows;
    for (const ChainStructure& chain : chains) {
      const ResidueFeatures f = residue_features(chain, model_->architecture.neighbours);
      rows.push_back(f.values.index_select(0, f.valid.nonzero().squeeze(1)));
    }
    if (rows.empty()) return torch::zeros({0, model_->num_features()});
    return torch::cat(rows, 0);
  }

  std::filesystem::path weights_;
  bool allow_untrained_;
  double min_confidence_;
  std::shared_ptr<VqModelImpl> model_;
};

OptionSchema tokenizer_schema() {
  const VqArchitecture a;
  const VqTraining t;
  OptionSchema s;
  // Not .existing(): the factory's own check names the file once, as an error rather than a warning.
  s.add("weights", OptionType::Path)
      .doc("safetensors file from `sapling train-tokenizer` (its metadata fixes the architecture); absent: an "
           "untrained model, for training");
  s.add("allow_untrained", OptionType::Bool).default_value(false).doc("let encode() run without weights (random codes; for tests)");
  s.add("codebook_size", OptionType::Int).default_value(a.codebook_size).min(2).max(32767)
      .doc("number of codes (states), e.g. 20, 64, 512, 4096; the mask state is this number");
  s.add("latent_dim", OptionType::Int).default_value(a.latent_dim).min(1).doc("width of the latent and of each code");
  s.add("hidden_dim", OptionType::Int).default_value(a.hidden_dim).min(1).doc("width of the encoder and decoder MLPs");
  s.add("neighbours", OptionType::Int).default_value(a.neighbours).min(0).max(32)
      .doc("nearest spatial neighbours (CA, |i-j| > 2) described in each residue's frame");
  s.add("beta", OptionType::Float).default_value(t.beta).min(0).doc("commitment loss weight");
  s.add("decay", OptionType::Float).default_value(t.decay).min(0).max(1, true).doc("codebook EMA decay");
  s.add("restart_after", OptionType::Int).default_value(t.restart_after).min(1)
      .doc("training batches in a row without an assignment before a code is re-seeded from the batch");
  s.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the untrained model's initialisation");
  s.add("min_confidence", OptionType::Float).default_value(0.0).min(0)
      .doc("residues whose CA B-factor / pLDDT is below this get the mask state (0 = off)");
  return s;
}

}  // namespace
}  // namespace sapling::vq

SAPLING_PLUGIN("vq_structure", "trainable VQ-VAE structure tokenizer (codes of each residue's backbone environment)") {
  sapling::StructureTokenizerRegistry::instance().add(
      {"vq_structure", "VQ-VAE codes of each residue's local backbone environment (train with `sapling train-tokenizer`)",
       sapling::vq::tokenizer_schema(), [](const sapling::Options& options) -> std::shared_ptr<sapling::StructureTokenizer> {
         return std::make_shared<sapling::vq::VqStructureTokenizer>(options);
       }});
}
