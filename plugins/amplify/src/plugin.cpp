// Registers the AMPLIFY SequenceEncoder ("amplify"): from a checkpoint folder or a released size.
#include "amplify_model.hpp"
#include <regex>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/plugin.hpp"
#include "sapling/safetensors.hpp"

namespace {

// AMPLIFY's original config.yaml has no model_type: it is recognised by its keys.
bool recognizes_original_config(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "config.json") || !std::filesystem::exists(dir / "config.yaml")) return false;
  const std::string text = sapling::read_file(dir / "config.yaml");
  return std::regex_search(text, std::regex("(^|\\n)\\s*(hidden_act|rms_norm)\\s*:"));
}

using sapling::amplify::AmplifyConfig;
using sapling::amplify::AmplifyModel;

// The model is built from the config before keys and shapes are compared, so a
// config claiming a far larger model than the weights hold (hostile or
// mismatched) would allocate, and initialise, that much memory first. A lower
// bound of the parameter count (weight matrices and embeddings) must stay within
// twice the stored values; smaller mismatches are left to the key and shape
// check, whose message is more precise.
constexpr double kAllocationSlack = 1 << 26;  // 64 Mi values (256 MB float32)
void check_config_fits_weights(const AmplifyConfig& c, const sapling::TensorStore& store,
                               const std::filesystem::path& dir) {
  double stored = 0;
  for (const auto& key : store.keys()) {
    double n = 1;
    for (int64_t d : store.entry(key).shape) n *= static_cast<double>(d);
    stored += n;
  }
  // In double: swiglu_hidden() would overflow int64 on an absurd intermediate_size.
  const double h = static_cast<double>(c.hidden_size), ffn = 2.0 * static_cast<double>(c.intermediate_size) / 3;
  const double lower_bound =
      static_cast<double>(c.num_hidden_layers) * (4 * h * h + 3 * h * ffn) + static_cast<double>(c.vocab_size) * h;
  if (lower_bound > 2 * stored + kAllocationSlack)
    sapling::fail(dir.string(), ": its config (hidden ", c.hidden_size, ", layers ", c.num_hidden_layers,
                  ", intermediate ", c.intermediate_size, ") describes at least ", lower_bound,
                  " parameters, far more than the ", stored, " values the weights hold; ",
                  "the config does not belong to these weights");
}

std::shared_ptr<sapling::SequenceEncoder> create_amplify(const sapling::Options& options) {
  const bool has_path = options.has("path");
  const bool has_preset = options.has("preset");
  if (has_path && has_preset)
    sapling::fail(options.origin("preset"), ": amplify: give either `path` (a checkpoint) or `preset` (random "
                  "weights), not both; a checkpoint's size comes from its config");
  if (has_path) {
    const auto dir = options.get_model_path("path");
    const AmplifyConfig config = AmplifyConfig::read(dir);
    check_config_fits_weights(config, sapling::TensorStore(dir), dir);
    auto model = std::make_shared<AmplifyModel>(config);
    model->load_pretrained(dir);
    return model;
  }
  if (has_preset) return std::make_shared<AmplifyModel>(AmplifyConfig::preset(options.get_string("preset")));
  sapling::fail("amplify: give `path` (a folder with config.json or config.yaml and model.safetensors) or `preset` "
                "(AMPLIFY_120M or AMPLIFY_350M, randomly initialised)");
}

sapling::OptionSchema amplify_schema() {
  sapling::OptionSchema schema;
  schema.add("path", sapling::OptionType::Path)
      .existing()
      .doc("checkpoint folder: config.json (or AMPLIFY's config.yaml) + model.safetensors or sharded index");
  schema.add("preset", sapling::OptionType::String)
      .one_of({"AMPLIFY_120M", "AMPLIFY_350M"})
      .doc("released size built with random weights (AMPLIFY init), when no path is given");
  return schema;
}

}  // namespace

SAPLING_PLUGIN("amplify", "AMPLIFY protein language model (RMSNorm, SwiGLU, interleaved rotary)") {
  sapling::Registration<sapling::SequenceEncoder> amplify{
      "amplify",
      "AMPLIFY masked protein LM (chandar-lab): 27-token vocabulary, hidden states are block outputs; "
      "its contact head is untrained unless the checkpoint carries contact_head.regression",
      amplify_schema(), create_amplify};
  amplify.model_types = {"AMPLIFY"};
  amplify.recognizes = recognizes_original_config;
  sapling::SequenceEncoderRegistry::instance().add(std::move(amplify));
}
