// ESM2 checkpoints in HF layout: config.json parsing, strict key/shape matching on load, atomic save.
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>

#include "esm2_model.hpp"
#include "sapling/compute_dtype.hpp"  // for torch_dtype_name
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/hf_tokenizer.hpp"
#include "sapling/log.hpp"
#include "sapling/safetensors.hpp"

namespace sapling::esm2 {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Present in released files but unused by a rotary ESM2 (or a model-level
// duplicate of the per-layer rotary buffers).
const std::string kPositionEmbeddingsKey = "esm.embeddings.position_embeddings.weight";
const std::set<std::string> kIgnoredKeys = {
    kPositionEmbeddingsKey,
    "esm.embeddings.position_ids",
    "esm.rotary_embeddings.inv_freq",
};
// transformers 5 may store one rotary buffer for all layers under this literal key.
const std::string kSharedRotaryKey = "esm.encoder.layer.*.attention.self.rotary_embeddings.inv_freq";
const std::string kDecoderKey = "lm_head.decoder.weight";
const std::string kRotarySuffix = ".attention.self.rotary_embeddings.inv_freq";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// LayerNorm `gamma`/`beta` (older/newer transformers naming) -> `weight`/`bias`.
std::string canonical_key(const std::string& key) {
  const auto is_norm = key.find("LayerNorm.") != std::string::npos || key.find("layer_norm") != std::string::npos;
  if (!is_norm) return key;
  if (ends_with(key, ".gamma")) return key.substr(0, key.size() - 5) + "weight";
  if (ends_with(key, ".beta")) return key.substr(0, key.size() - 4) + "bias";
  return key;
}

std::string shape_text(torch::IntArrayRef shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

template <typename T>
T config_value(const json& j, const char* key, const fs::path& file, std::optional<T> fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    fail(file.string(), ": required key '", key, "' is missing");
  }
  try {
    if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) throw std::runtime_error("not a boolean");
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer()) throw std::runtime_error("not an integer");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!it->is_number()) throw std::runtime_error("not a number");
    } else {
      if (!it->is_string()) throw std::runtime_error("not a string");
    }
    return it->get<T>();
  } catch (const std::exception&) {
    fail(file.string(), ": key '", key, "' has value ", it->dump(), ", expected ",
         std::is_same_v<T, bool> ? "a boolean" : std::is_integral_v<T> ? "an integer"
                                             : std::is_floating_point_v<T> ? "a number" : "a string");
  }
}

Esm2Config read_config(const fs::path& file) {
  json j;
  try {
    j = json::parse(read_file(file));
  } catch (const json::exception& e) {
    fail(file.string(), ": not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail(file.string(), ": expected a JSON object");
  const auto model_type = config_value<std::string>(j, "model_type", file, std::string("esm"));
  if (model_type != "esm") fail(file.string(), ": model_type is '", model_type, "', expected 'esm'");
  const auto position_type = config_value<std::string>(j, "position_embedding_type", file, std::string("rotary"));
  if (position_type != "rotary")
    fail(file.string(), ": position_embedding_type is '", position_type, "'; only rotary (ESM2) is supported");
  if (config_value<bool>(j, "emb_layer_norm_before", file, false))
    fail(file.string(), ": emb_layer_norm_before is true (ESM-1b layout); ESM2 has no norm before the layers");

  Esm2Config c;
  c.hidden_size = config_value<int64_t>(j, "hidden_size", file, std::nullopt);
  c.num_layers = config_value<int64_t>(j, "num_hidden_layers", file, std::nullopt);
  c.num_heads = config_value<int64_t>(j, "num_attention_heads", file, std::nullopt);
  c.intermediate_size = config_value<int64_t>(j, "intermediate_size", file, std::nullopt);
  c.layer_norm_eps = config_value<double>(j, "layer_norm_eps", file, 1e-5);
  c.token_dropout = config_value<bool>(j, "token_dropout", file, true);
  c.vocab_size = config_value<int64_t>(j, "vocab_size", file, int64_t{33});
  c.max_position_embeddings = config_value<int64_t>(j, "max_position_embeddings", file, int64_t{1026});
  c.pad_token_id = config_value<int64_t>(j, "pad_token_id", file, int64_t{1});
  c.mask_token_id = config_value<int64_t>(j, "mask_token_id", file, int64_t{32});
  c.eos_token_id = config_value<int64_t>(j, "eos_token_id", file, int64_t{2});
  c.rope_theta = config_value<double>(j, "rope_theta", file, 10000.0);
  validate_config(c, file.string());
  return c;
}

std::string config_summary(const Esm2Config& c) {
  std::ostringstream os;
  os << c.num_layers << " layers, hidden_size " << c.hidden_size << ", " << c.num_heads << " heads, intermediate_size "
     << c.intermediate_size << ", vocab_size " << c.vocab_size;
  return os.str();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Every element the checkpoint stores (shapes were validated by the safetensors reader).
double stored_elements(const TensorStore& store) {
  double total = 0;
  for (const auto& key : store.keys()) {
    double n = 1;
    for (int64_t d : store.entry(key).shape) n *= static_cast<double>(d);
    total += n;
  }
  return total;
}

// The modules are built from config.json before keys and shapes are compared,
// so a config claiming a far larger model than the weights hold (hostile or
// mismatched) would allocate, and touch, that much memory first. A lower
// bound of the parameter count (weight matrices and embeddings only) must stay
// within twice the stored values; smaller mismatches are left to the key and
// shape check, whose message is more precise.
constexpr double kAllocationSlack = 1 << 26;  // 64 Mi values (256 MB float32)
void check_config_fits_weights(const Esm2Config& c, const TensorStore& store, const fs::path& dir) {
  const double h = static_cast<double>(c.hidden_size), inter = static_cast<double>(c.intermediate_size);
  const double lower_bound = static_cast<double>(c.num_layers) * (4 * h * h + 2 * h * inter) +
                             static_cast<double>(c.vocab_size) * h + h * h;
  const double stored = stored_elements(store);
  if (lower_bound > 2 * stored + kAllocationSlack)
    fail(dir.string(), ": config.json (", config_summary(c), ") describes at least ", lower_bound,
         " parameters, far more than the ", stored, " values the weights hold; ",
         "config.json does not belong to these weights");
}

}  // namespace

void Esm2Encoder::load_pretrained(const fs::path& dir) {
  const fs::path config_file = dir / "config.json";
  if (!fs::exists(config_file)) fail(dir.string(), ": no config.json (expected an HF-layout ESM2 folder)");
  Esm2Config config = read_config(config_file);
  if (token_dropout_override_) config.token_dropout = *token_dropout_override_;
  TensorStore store(dir);
  check_config_fits_weights(config, store, dir);

  // Load into fresh modules; they replace the current ones only when every
  // key matched, so a failed load leaves the model as it was.
  Esm esm(config);
  LMHead lm_head(config);
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : esm->named_parameters()) targets["esm." + p.key()] = p.value();
  for (const auto& p : lm_head->named_parameters()) targets["lm_head." + p.key()] = p.value();
  std::vector<torch::Tensor> rotary_buffers;
  for (const auto& b : esm->named_buffers()) {
    targets["esm." + b.key()] = b.value();
    rotary_buffers.push_back(b.value());
  }

  std::vector<std::string> unexpected, wrong_shape;
  std::set<std::string> found;
  std::vector<std::pair<torch::Tensor, std::string>> assignments;  // target, stored key
  torch::Tensor decoder;
  const auto check_shape = [&](const std::string& key, const torch::Tensor& target) {
    const auto& stored = store.entry(key).shape;
    if (torch::IntArrayRef(stored) == target.sizes()) return true;
    wrong_shape.push_back(key + " (expected " + shape_text(target.sizes()) + ", found " + shape_text(stored) + ")");
    return false;
  };
  for (const auto& key : store.keys()) {
    if (kIgnoredKeys.count(key)) continue;
    if (key == kDecoderKey) {
      decoder = store.get(key);
      continue;
    }
    if (key == kSharedRotaryKey) {
      for (const auto& buffer : rotary_buffers)
        if (check_shape(key, buffer)) assignments.emplace_back(buffer, key);
      for (const auto& t : targets)
        if (ends_with(t.first, kRotarySuffix)) found.insert(t.first);
      continue;
    }
    const std::string name = canonical_key(key);
    auto it = targets.find(name);
    if (it == targets.end()) {
      unexpected.push_back(key);
      continue;
    }
    if (!found.insert(name).second) {
      unexpected.push_back(key + " (duplicate of " + name + ")");
      continue;
    }
    if (check_shape(key, it->second)) assignments.emplace_back(it->second, key);
  }
  std::vector<std::string> missing;
  bool rotary_computed = false;
  for (const auto& t : targets) {
    if (found.count(t.first)) continue;
    if (ends_with(t.first, kRotarySuffix)) {
      rotary_computed = true;  // older exports drop the buffer: recompute it
      continue;
    }
    missing.push_back(t.first);
  }
  if (!unexpected.empty() || !missing.empty() || !wrong_shape.empty()) {
    std::ostringstream os;
    os << dir.string() << ": checkpoint does not match config.json (" << config_summary(config) << ")";
    if (!missing.empty()) os << "; missing keys: " << join(missing);
    if (!unexpected.empty()) os << "; unexpected keys: " << join(unexpected);
    if (!wrong_shape.empty()) os << "; wrong shapes: " << join(wrong_shape);
    throw Error(os.str());
  }

  {
    torch::NoGradGuard no_grad;
    for (auto& [target, key] : assignments) target.copy_(store.get(key).to(torch::kFloat32));
  }
  const auto& embedding = esm->embeddings->word_embeddings->weight;
  if (decoder.defined()) {
    // The LM decoder is tied to the word embeddings; an untied copy cannot be represented.
    if (decoder.sizes() != embedding.sizes() || !torch::equal(decoder.to(torch::kFloat32), embedding))
      fail(dir.string(), ": ", kDecoderKey, " differs from esm.embeddings.word_embeddings.weight; ",
           "ESM2 ties them and an untied LM decoder is not supported");
  }
  if (rotary_computed) info("esm2: ", dir.string(), " has no rotary inv_freq buffers; computing them (base ", config.rope_theta, ")");

  // Keep the device the model was on.
  const auto device = esm_->embeddings->word_embeddings->weight.device();
  esm->to(device);
  lm_head->to(device);
  esm->train(is_training());
  lm_head->train(is_training());
  config_ = config;
  esm_ = Esm(replace_module("esm", esm));
  lm_head_ = LMHead(replace_module("lm_head", lm_head));
}

void Esm2Encoder::save_pretrained(const fs::path& dir) const {
  fs::create_directories(dir);
  ensure_writable_dir(dir);
  NamedTensors tensors;
  for (const auto& p : named_parameters()) tensors.emplace_back(p.key(), p.value().detach());
  for (const auto& b : named_buffers()) tensors.emplace_back(b.key(), b.value().detach());
  const auto& word_embeddings = esm_->embeddings->word_embeddings->weight;
  // Upstream ESM2 folders carry an absolute position table that a rotary model never reads; transformers 4.x
  // builds the module regardless and, when the tensor is missing, warns that it was "newly initialized" and
  // that the model should be trained. Zeros say "unused" and silence the warning (5.x ignores the key).
  tensors.emplace_back(kPositionEmbeddingsKey,
                       torch::zeros({config_.max_position_embeddings, config_.hidden_size}, word_embeddings.options()));
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});

  const auto dtype = torch_dtype_name(word_embeddings.scalar_type());
  json config = {
      {"architectures", json::array({"EsmForMaskedLM"})},
      {"model_type", "esm"},
      {"position_embedding_type", "rotary"},
      {"hidden_size", config_.hidden_size},
      {"num_hidden_layers", config_.num_layers},
      {"num_attention_heads", config_.num_heads},
      {"intermediate_size", config_.intermediate_size},
      {"layer_norm_eps", config_.layer_norm_eps},
      {"token_dropout", config_.token_dropout},
      {"vocab_size", config_.vocab_size},
      {"max_position_embeddings", config_.max_position_embeddings},
      {"pad_token_id", config_.pad_token_id},
      {"mask_token_id", config_.mask_token_id},
      {"eos_token_id", config_.eos_token_id},
      {"rope_theta", config_.rope_theta},
      {"tie_word_embeddings", true},
      {"emb_layer_norm_before", false},
      {"hidden_dropout_prob", 0.0},
      {"attention_probs_dropout_prob", 0.0},
      {"initializer_range", 0.02},
      {"is_folding_model", false},
      // transformers 5 reads `dtype`, 4.x `torch_dtype`.
      {"dtype", dtype},
      {"torch_dtype", dtype},
  };
  write_file_atomic(dir / "config.json", config.dump(2) + "\n");
}

void Esm2Encoder::save_tokenizer(const fs::path& dir) const {
  write_hf_tokenizer(dir, tokenizer_, HfTokenizerLayout::EsmVocabTxt, pretrained_tokens());
}

}  // namespace sapling::esm2
