// Registers the AMPLIFY SequenceEncoder ("amplify"): from a checkpoint folder or a released size.
#include "amplify_model.hpp"
#include "sapling/error.hpp"
#include "sapling/plugin.hpp"

namespace {

using sapling::amplify::AmplifyConfig;
using sapling::amplify::AmplifyModel;

std::shared_ptr<sapling::SequenceEncoder> create_amplify(const sapling::Options& options) {
  const bool has_path = options.has("path");
  const bool has_preset = options.has("preset");
  if (has_path && has_preset)
    sapling::fail(options.origin("preset"), ": amplify: give either `path` (a checkpoint) or `preset` (random "
                  "weights), not both; a checkpoint's size comes from its config");
  if (has_path) {
    const auto dir = options.get_path("path");
    auto model = std::make_shared<AmplifyModel>(AmplifyConfig::read(dir));
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
      .doc("checkpoint folder: config.json (or AMPLIFY's config.yaml) + model.safetensors or sharded index");
  schema.add("preset", sapling::OptionType::String)
      .one_of({"AMPLIFY_120M", "AMPLIFY_350M"})
      .doc("released size built with random weights (AMPLIFY init), when no path is given");
  return schema;
}

}  // namespace

SAPLING_PLUGIN("amplify", "AMPLIFY protein language model (RMSNorm, SwiGLU, interleaved rotary)") {
  sapling::SequenceEncoderRegistry::instance().add(
      {"amplify",
       "AMPLIFY masked protein LM (chandar-lab): 27-token vocabulary, hidden states are block outputs; "
       "its contact head is untrained unless the checkpoint carries contact_head.regression",
       amplify_schema(), create_amplify});
}
