// detect_sequence_plugin / load_sequence_encoder: config.json model_type -> registered encoder.
#include "sapling/model_loading.hpp"

#include <nlohmann/json.hpp>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/internal/hub_cache.hpp"
#include "sapling/interfaces.hpp"

namespace sapling {

std::string detect_sequence_plugin(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) fail(dir.string(), ": model folder does not exist");
  std::string model_type;
  const auto& entries = SequenceEncoderRegistry::instance().entries();
  if (std::filesystem::exists(dir / "config.json")) {
    try {
      auto config = nlohmann::json::parse(read_file(dir / "config.json"));
      if (!config.is_object()) fail((dir / "config.json").string(), ": expected a JSON object");
      if (config.contains("model_type") && config["model_type"].is_string()) model_type = config["model_type"];
    } catch (const nlohmann::json::exception& e) {
      fail((dir / "config.json").string(), ": invalid JSON: ", e.what());
    }
  }
  if (model_type.empty()) {
    // Folders without a model_type (original, non-HF layouts): the plugin that recognises the folder.
    for (const auto& [name, entry] : entries)
      if (entry.recognizes && entry.recognizes(dir)) return name;
    if (!std::filesystem::exists(dir / "config.json"))
      fail(dir.string(), ": no config.json (expected a Hugging Face-layout model folder)");
    fail(dir.string(), ": config has no model_type; name the encoder (--encoder NAME, or [model] component = \"NAME\" in a "
         "recipe; `sapling plugins list` shows the names)");
  }
  const auto lower = [](const std::string& s) {
    std::string out;
    for (char c : s) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    return out;
  };
  for (const auto& [name, entry] : entries)
    for (const auto& type : entry.model_types)
      if (lower(type) == lower(model_type)) return name;
  fail(dir.string(), ": model_type '", model_type, "' is not one sapling knows; name the encoder (--encoder NAME, or [model] "
       "component = \"NAME\" in a recipe; `sapling plugins list` shows the names)");
}

std::shared_ptr<SequenceEncoder> load_sequence_encoder(const std::filesystem::path& folder, const std::string& plugin) {
  const auto dir = resolve_model_folder(folder.string(), folder);  // a path, or a hub id in the local cache
  const std::string name = plugin.empty() ? detect_sequence_plugin(dir) : plugin;
  auto& registry = SequenceEncoderRegistry::instance();
  const auto& entry = registry.find(name);
  auto options = Options::defaults(entry.schema);
  options.set("path", std::filesystem::absolute(dir).string());
  auto model = entry.factory(options);
  model->eval();
  return model;
}

}  // namespace sapling
