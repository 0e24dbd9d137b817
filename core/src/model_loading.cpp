// detect_sequence_plugin / load_sequence_encoder: config.json model_type -> registered encoder.
#include "sapling/model_loading.hpp"

#include <nlohmann/json.hpp>
#include <regex>

#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace sapling {

std::string detect_sequence_plugin(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) fail(dir.string(), ": model folder does not exist");
  std::string model_type;
  if (std::filesystem::exists(dir / "config.json")) {
    try {
      auto config = nlohmann::json::parse(read_file(dir / "config.json"));
      if (!config.is_object()) fail((dir / "config.json").string(), ": expected a JSON object");
      if (config.contains("model_type") && config["model_type"].is_string()) model_type = config["model_type"];
    } catch (const nlohmann::json::exception& e) {
      fail((dir / "config.json").string(), ": invalid JSON: ", e.what());
    }
  } else if (std::filesystem::exists(dir / "config.yaml")) {
    // AMPLIFY's original configs have no model_type; they are recognised by their keys.
    const std::string text = read_file(dir / "config.yaml");
    if (std::regex_search(text, std::regex("(^|\\n)\\s*(hidden_act|rms_norm)\\s*:"))) model_type = "AMPLIFY";
  } else {
    fail(dir.string(), ": no config.json (expected a Hugging Face-layout model folder)");
  }
  std::string lower;
  for (char c : model_type) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "esm") return "esm2";
  if (lower == "amplify") return "amplify";
  if (model_type.empty()) fail(dir.string(), ": config has no model_type; name the plugin explicitly (--plugin)");
  fail(dir.string(), ": model_type '", model_type, "' is not one sapling knows; name the plugin explicitly (--plugin)");
}

std::shared_ptr<SequenceEncoder> load_sequence_encoder(const std::filesystem::path& dir, const std::string& plugin) {
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
