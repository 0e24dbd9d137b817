// Registers the "esm2" SequenceEncoder: an HF ESM2 folder (`path`) or a released size, randomly initialised (`preset`).
#include <optional>

#include "esm2_model.hpp"
#include "esm2_presets.hpp"
#include "sapling/error.hpp"
#include "sapling/plugin.hpp"

namespace {

using namespace sapling;

OptionSchema esm2_schema() {
  OptionSchema schema;
  schema.add("path", OptionType::Path)
      .existing()
      .doc("HF-layout ESM2 folder (config.json + model.safetensors or shards) to load");
  schema.add("preset", OptionType::String)
      .one_of(esm2::esm2_preset_names())
      .doc("released ESM2 size to build with random weights (when no path is given)");
  schema.add("token_dropout", OptionType::Bool)
      .doc("rescale embeddings for the <mask> ratio as ESM2 was trained (default: config.json's value, true)");
  return schema;
}

std::shared_ptr<SequenceEncoder> make_esm2(const Options& options) {
  const std::optional<bool> token_dropout =
      options.has("token_dropout") ? std::optional<bool>(options.get_bool("token_dropout")) : std::nullopt;
  if (options.has("path") && options.has("preset"))
    fail("esm2: give either 'path' (", options.origin("path"), ") or 'preset' (", options.origin("preset"),
         "), not both: a loaded folder brings its own size");
  if (options.has("path")) {
    const auto dir = options.get_model_path("path");
    // Built at the smallest size, then replaced by what config.json says.
    auto model = std::make_shared<esm2::Esm2Encoder>(esm2::preset_config("esm2_t6_8M_UR50D"), token_dropout);
    try {
      model->load_pretrained(dir);
    } catch (const Error&) {
      rethrow_with_context(options.origin("path") + ": esm2 option 'path'");
    }
    return model;
  }
  if (options.has("preset"))
    return std::make_shared<esm2::Esm2Encoder>(esm2::preset_config(options.get_string("preset")), token_dropout);
  fail("esm2: set 'path' (an HF ESM2 folder) or 'preset' (one of ", [] {
    std::string names;
    for (const auto& n : esm2::esm2_preset_names()) names += (names.empty() ? "" : ", ") + n;
    return names;
  }(), ")");
}

}  // namespace

SAPLING_PLUGIN("esm2", "ESM2 protein language model (HF checkpoints, rotary attention, LM and contact heads)") {
  Registration<SequenceEncoder> esm2{"esm2", "ESM2 masked protein language model (Lin et al. 2023), HF checkpoint layout",
                                     esm2_schema(), make_esm2};
  esm2.model_types = {"esm"};  // transformers' EsmConfig
  SequenceEncoderRegistry::instance().add(std::move(esm2));
}
