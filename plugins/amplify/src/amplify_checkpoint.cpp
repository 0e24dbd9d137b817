// AMPLIFY checkpoint I/O: config.json / config.yaml parsing, strict weight loading, atomic saving.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "amplify_model.hpp"
#include "sapling/compute_dtype.hpp"  // for torch_dtype_name
#include "sapling/error.hpp"
#include "sapling/files.hpp"        // for read_file, write_file_atomic
#include "sapling/hf_tokenizer.hpp"  // for write_hf_tokenizer
#include "sapling/options.hpp"      // for did_you_mean
#include "sapling/safetensors.hpp"  // for TensorStore, save_safetensors

namespace sapling::amplify {

namespace {

using json = nlohmann::json;
// Where a config field came from, for error messages ("config.yaml:7: key 'x'").
using Locator = std::function<std::string(const std::string& key)>;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Typed access to the flat field table of either config format.
class Fields {
 public:
  Fields(const json& table, Locator where) : table_(table), where_(std::move(where)) {}

  bool has(const std::string& key) const { return table_.contains(key) && !table_.at(key).is_null(); }

  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt) const {
    if (!has(key)) return require(key, fallback);
    const auto& v = table_.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    // json writers sometimes store whole numbers as 2048.0
    if (v.is_number_float() && v.get<double>() == std::floor(v.get<double>())) return static_cast<int64_t>(v.get<double>());
    fail(where_(key), ": expected an integer, got ", v.dump());
  }
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const auto& v = table_.at(key);
    if (!v.is_number()) fail(where_(key), ": expected a number, got ", v.dump());
    return v.get<double>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const auto& v = table_.at(key);
    if (!v.is_boolean()) fail(where_(key), ": expected true or false, got ", v.dump());
    return v.get<bool>();
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const auto& v = table_.at(key);
    if (!v.is_string()) fail(where_(key), ": expected a string, got ", v.dump());
    return v.get<std::string>();
  }
  const Locator& where() const { return where_; }

 private:
  int64_t require(const std::string& key, std::optional<int64_t> fallback) const {
    if (!fallback) fail(where_(key), ": required field is missing");
    return *fallback;
  }
  const json& table_;
  Locator where_;
};

AmplifyConfig config_from_fields(const Fields& f) {
  AmplifyConfig c;
  c.hidden_size = f.integer("hidden_size");
  c.num_hidden_layers = f.integer("num_hidden_layers");
  c.num_attention_heads = f.integer("num_attention_heads");
  c.intermediate_size = f.integer("intermediate_size");
  c.norm_eps = f.number("norm_eps", c.norm_eps);
  c.layer_norm_after_embedding = f.boolean("layer_norm_after_embedding", c.layer_norm_after_embedding);
  c.layer_norm_before_last_layer = f.boolean("layer_norm_before_last_layer", c.layer_norm_before_last_layer);
  c.vocab_size = f.integer("vocab_size", c.vocab_size);
  c.pad_token_id = f.integer("pad_token_id", c.pad_token_id);
  c.max_length = f.integer("max_length", c.max_length);
  c.embedding_init_range = f.number("embedding_init_range", c.embedding_init_range);
  c.decoder_init_range = f.number("decoder_init_range", c.decoder_init_range);

  // Variants AMPLIFY's code can build but no released model uses: refuse rather than compute wrongly.
  if (!f.boolean("rms_norm", true))
    fail(f.where()("rms_norm"), ": false (LayerNorm variant) is not supported; AMPLIFY models use RMSNorm");
  const auto act = f.text("hidden_act", "SwiGLU");
  if (lower(act) != "swiglu")
    fail(f.where()("hidden_act"), ": '", act, "' is not supported; AMPLIFY models use SwiGLU");
  for (const char* key : {"ffn_bias", "att_bias"})
    if (f.boolean(key, false)) fail(f.where()(key), ": true is not supported; AMPLIFY models have no such biases");
  const auto& vocab = amplify_tokenizer();
  if (c.vocab_size != vocab.size())
    fail(f.where()("vocab_size"), ": ", c.vocab_size, " but the AMPLIFY vocabulary has ", vocab.size(), " tokens");
  const std::map<std::string, int64_t> token_ids = {{"pad_token_id", vocab.pad_id()}, {"mask_token_id", vocab.mask_id()},
                                                    {"bos_token_id", vocab.bos_id()}, {"eos_token_id", vocab.eos_id()},
                                                    {"unk_token_id", vocab.unk_id()}};
  for (const auto& [key, expected] : token_ids)
    if (f.has(key) && f.integer(key) != expected)
      fail(f.where()(key), ": ", f.integer(key), " but the AMPLIFY vocabulary has it at ", expected);
  if (!(c.norm_eps > 0)) fail(f.where()("norm_eps"), ": must be positive");
  return c;
}

// One scalar of the flat YAML subset: bool, null, integer, float, or (quoted or plain) string.
json yaml_scalar(const std::string& raw, const std::string& where) {
  if (raw.empty() || raw == "~" || raw == "null" || raw == "Null" || raw == "NULL") return nullptr;
  if (raw == "true" || raw == "True" || raw == "TRUE") return true;
  if (raw == "false" || raw == "False" || raw == "FALSE") return false;
  const char first = raw.front();
  if (first == '"' || first == '\'') {
    if (raw.size() < 2 || raw.back() != first) fail(where, ": unterminated quoted string ", raw);
    const auto inner = raw.substr(1, raw.size() - 2);
    if (inner.find(first) != std::string::npos || (first == '"' && inner.find('\\') != std::string::npos))
      fail(where, ": escapes in quoted strings are not supported: ", raw);
    return inner;
  }
  if (first == '[' || first == '{' || first == '&' || first == '*' || first == '!' || first == '|' || first == '>')
    fail(where, ": only plain scalars are supported in config.yaml (found ", raw, ")");
  char* end = nullptr;
  const long long as_int = std::strtoll(raw.c_str(), &end, 10);
  if (end && *end == '\0') return static_cast<int64_t>(as_int);
  const double as_float = std::strtod(raw.c_str(), &end);
  if (end && *end == '\0') return as_float;
  return raw;
}

// config.json's `auto_map` of a folder with the release's modelling code.
const json kAmplifyAutoMap = {{"AutoConfig", "amplify.AMPLIFYConfig"},
                              {"AutoModel", "amplify.AMPLIFY"},
                              {"AutoModelForMaskedLM", "amplify.AMPLIFY"}};

}  // namespace

// ---------------------------------------------------------------- AmplifyConfig

int64_t AmplifyConfig::swiglu_hidden() const {
  const int64_t width = (2 * intermediate_size) / 3;  // Python int() of a positive float
  constexpr int64_t multiple = 8;
  return multiple * ((width + multiple - 1) / multiple);
}

bool AmplifyConfig::same_architecture(const AmplifyConfig& o) const {
  return hidden_size == o.hidden_size && num_hidden_layers == o.num_hidden_layers &&
         num_attention_heads == o.num_attention_heads && intermediate_size == o.intermediate_size &&
         norm_eps == o.norm_eps && layer_norm_after_embedding == o.layer_norm_after_embedding &&
         layer_norm_before_last_layer == o.layer_norm_before_last_layer && vocab_size == o.vocab_size &&
         pad_token_id == o.pad_token_id && max_length == o.max_length;
}

void AmplifyConfig::validate(const std::string& source) const {
  if (hidden_size <= 0 || num_hidden_layers <= 0 || num_attention_heads <= 0 || intermediate_size <= 0)
    fail(source, ": hidden_size, num_hidden_layers, num_attention_heads and intermediate_size must be positive (got ",
         hidden_size, ", ", num_hidden_layers, ", ", num_attention_heads, ", ", intermediate_size, ")");
  if (hidden_size % num_attention_heads != 0)
    fail(source, ": hidden_size ", hidden_size, " is not divisible by num_attention_heads ", num_attention_heads);
  if (head_dim() % 2 != 0) fail(source, ": head dimension ", head_dim(), " must be even for rotary embeddings");
  if (max_length <= 0) fail(source, ": max_length must be positive, got ", max_length);
  if (pad_token_id < 0 || pad_token_id >= vocab_size)
    fail(source, ": pad_token_id ", pad_token_id, " outside the vocabulary of ", vocab_size);
}

AmplifyConfig AmplifyConfig::preset(const std::string& name) {
  AmplifyConfig c;
  if (name == "AMPLIFY_120M") {
    c.hidden_size = 640, c.num_hidden_layers = 24, c.num_attention_heads = 10, c.intermediate_size = 2560;
  } else if (name == "AMPLIFY_350M") {
    c.hidden_size = 960, c.num_hidden_layers = 32, c.num_attention_heads = 15, c.intermediate_size = 3840;
  } else {
    fail("amplify: unknown preset '", name, "'", did_you_mean(name, {"AMPLIFY_120M", "AMPLIFY_350M"}),
         "; choose AMPLIFY_120M or AMPLIFY_350M");
  }
  return c;
}

AmplifyConfig AmplifyConfig::from_json_text(const std::string& text, const std::string& source) {
  json table;
  try {
    table = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, ": invalid JSON: ", e.what());
  }
  if (!table.is_object()) fail(source, ": expected a JSON object of config fields");
  const Fields fields(table, [&source](const std::string& key) { return source + ": key '" + key + "'"; });
  auto config = config_from_fields(fields);
  config.validate(source);
  return config;
}

// A strict reader for the flat `key: value` YAML AMPLIFY writes: comments, blank lines and a
// leading `---` are allowed; nesting, lists, anchors, multi-line values and duplicate keys are errors.
AmplifyConfig AmplifyConfig::from_yaml_text(const std::string& text, const std::string& source) {
  json table = json::object();
  std::map<std::string, size_t> line_of;
  std::istringstream in(text);
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string where = source + ":" + std::to_string(number);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // Strip a comment: '#' at the start or after whitespace, outside quotes.
    char quote = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(line[i - 1])))) {
        line.erase(i);
        break;
      }
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.empty()) continue;
    if (line == "---" && table.empty()) continue;
    if (line == "...") break;
    if (std::isspace(static_cast<unsigned char>(line[0])) || line[0] == '-')
      fail(where, ": nested or list YAML is not supported; config.yaml must be flat `key: value` lines");
    const auto colon = line.find(':');
    if (colon == std::string::npos) fail(where, ": expected `key: value`, got '", line, "'");
    const std::string key = line.substr(0, colon);
    for (char c : key)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
        fail(where, ": invalid key '", key, "' (letters, digits and _ only)");
    if (colon + 1 < line.size() && line[colon + 1] != ' ')
      fail(where, ": expected a space after ':' in '", line, "'");
    std::string value = colon + 1 < line.size() ? line.substr(colon + 2) : "";
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (value.empty())
      fail(where, ": key '", key, "' has no value (nested sections are not supported in config.yaml)");
    if (line_of.count(key))
      fail(where, ": key '", key, "' repeats the one on line ", line_of[key]);
    line_of[key] = number;
    table[key] = yaml_scalar(value, where);
  }
  const Fields fields(table, [&source, &line_of](const std::string& key) {
    auto it = line_of.find(key);
    return source + (it == line_of.end() ? std::string() : ":" + std::to_string(it->second)) + ": key '" + key + "'";
  });
  auto config = config_from_fields(fields);
  config.validate(source);
  return config;
}

AmplifyConfig AmplifyConfig::read(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) fail(dir.string(), ": not a checkpoint folder (expected config.json + model.safetensors)");
  if (fs::exists(dir / "config.json"))
    return from_json_text(read_file(dir / "config.json"), (dir / "config.json").string());
  if (fs::exists(dir / "config.yaml"))
    return from_yaml_text(read_file(dir / "config.yaml"), (dir / "config.yaml").string());
  fail(dir.string(), ": holds neither config.json nor config.yaml");
}

void AmplifyConfig::write_json(const std::filesystem::path& file, const std::string& dtype, bool with_code) const {
  auto j = json::parse(to_json_text());
  j["architectures"] = json::array({"AMPLIFY"});
  // What `trust_remote_code` loads: the release's amplify.py, copied beside the weights. Its AMPLIFY class returns
  // the LM logits, so it serves AutoModelForMaskedLM as well. Without the code the entry is left out: it would
  // make even AutoTokenizer ask to run custom code that is not there (the model card says what to add).
  if (with_code) j["auto_map"] = kAmplifyAutoMap;
  j["dtype"] = dtype;        // transformers 5
  j["torch_dtype"] = dtype;  // transformers 4.x
  write_file_atomic(file, j.dump(2) + "\n");
}

std::string AmplifyConfig::to_json_text() const {
  const auto& vocab = amplify_tokenizer();
  json j = {{"model_type", "AMPLIFY"},
            {"hidden_size", hidden_size},
            {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads},
            {"intermediate_size", intermediate_size},
            {"dropout_prob", 0},
            {"embedding_init_range", embedding_init_range},
            {"decoder_init_range", decoder_init_range},
            {"rms_norm", true},
            {"norm_eps", norm_eps},
            {"hidden_act", "SwiGLU"},
            {"layer_norm_after_embedding", layer_norm_after_embedding},
            {"layer_norm_before_last_layer", layer_norm_before_last_layer},
            {"vocab_size", vocab_size},
            {"ffn_bias", false},
            {"att_bias", false},
            {"pad_token_id", pad_token_id},
            {"max_length", max_length},
            {"mask_token_id", vocab.mask_id()},
            {"bos_token_id", vocab.bos_id()},
            {"eos_token_id", vocab.eos_id()},
            {"unk_token_id", vocab.unk_id()}};
  return j.dump(2) + "\n";
}

// ---------------------------------------------------------------- weights

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string shape_string(torch::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

const std::set<std::string> kOptionalKeys = {"contact_head.regression.weight", "contact_head.regression.bias"};

bool is_contact_key(const std::string& key) { return kOptionalKeys.count(key) > 0; }

// The release's modelling code (amplify.py, rmsnorm.py, rotary.py, ...) that `trust_remote_code` runs: the
// Python files of a folder.
std::vector<std::filesystem::path> modelling_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".py") out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

void AmplifyModel::load_pretrained(const std::filesystem::path& dir) {
  const auto file_config = AmplifyConfig::read(dir);
  if (!file_config.same_architecture(config_))
    fail(dir.string(), ": its config describes another architecture (hidden ", file_config.hidden_size, ", layers ",
         file_config.num_hidden_layers, ", heads ", file_config.num_attention_heads, ", intermediate ",
         file_config.intermediate_size, ") than this model (hidden ", config_.hidden_size, ", layers ",
         config_.num_hidden_layers, ", heads ", config_.num_attention_heads, ", intermediate ",
         config_.intermediate_size, "); create the model from the folder instead");
  const TensorStore store(dir);
  // sapling writes a trained contact head beside the model (the release's model has none); older folders kept it
  // in model.safetensors, which still loads.
  std::optional<SafetensorsFile> contact_file;
  if (std::filesystem::exists(dir / kContactHeadFile)) contact_file.emplace(dir / kContactHeadFile);
  auto params = named_parameters(/*recurse=*/true);
  const auto stored_in = [&](const std::string& key) -> std::optional<std::string> {
    if (store.contains(key)) return (dir / "model.safetensors").string();
    if (contact_file && is_contact_key(key) && contact_file->contains(key)) return contact_file->path().string();
    return std::nullopt;
  };

  // Check everything before touching a parameter, so a failed load leaves the model as it was.
  std::vector<std::string> missing, unexpected;
  for (const auto& p : params)
    if (!stored_in(p.key()) && !is_contact_key(p.key())) missing.push_back(p.key());
  for (const auto& key : store.keys())
    if (!params.contains(key)) unexpected.push_back(key);
  if (contact_file)
    for (const auto& key : contact_file->keys())
      if (!is_contact_key(key)) unexpected.push_back(key + " (in " + std::string(kContactHeadFile) + ")");
  if (!missing.empty() || !unexpected.empty()) {
    std::string message = dir.string() + ": checkpoint keys do not match the AMPLIFY model of its config";
    if (!missing.empty()) message += "; missing: " + join(missing);
    if (!unexpected.empty()) message += "; unexpected: " + join(unexpected);
    fail(message);
  }
  const int contact_keys = static_cast<int>(stored_in("contact_head.regression.weight").has_value()) +
                           static_cast<int>(stored_in("contact_head.regression.bias").has_value());
  if (contact_keys == 1)
    fail(dir.string(), ": contact_head.regression needs both weight and bias, the checkpoint has only one");
  const auto tensor = [&](const std::string& key) {
    return store.contains(key) ? store.get(key) : contact_file->get(key);
  };
  for (const auto& p : params) {
    const auto file = stored_in(p.key());
    if (!file) continue;
    const TensorEntry& entry =
        store.contains(p.key()) ? store.entry(p.key()) : contact_file->header().tensors.at(p.key());
    if (entry.dtype != DType::F32 && entry.dtype != DType::F16 && entry.dtype != DType::BF16)
      fail(*file, ": tensor '", p.key(), "' is stored as ", dtype_name(entry.dtype), "; expected F32, F16 or BF16");
    if (torch::IntArrayRef(entry.shape) != p.value().sizes())
      fail(*file, ": tensor '", p.key(), "' has shape ", shape_string(entry.shape), " but the model expects ",
           shape_string(p.value().sizes()));
  }

  torch::NoGradGuard no_grad;
  for (auto& p : params)
    if (stored_in(p.key())) p.value().copy_(tensor(p.key()).to(torch::kFloat32));
  contact_head_trained_ = contact_keys == 2;
  modelling_files_ = modelling_files(dir);
}

void AmplifyModel::save_pretrained(const std::filesystem::path& dir) const {
  ensure_writable_dir(dir);
  NamedTensors model_tensors, contact_tensors;
  for (const auto& p : named_parameters(/*recurse=*/true))
    (is_contact_key(p.key()) ? contact_tensors : model_tensors).emplace_back(p.key(), p.value().detach());
  // Weights first: a folder whose config is new but whose weights are old would load wrongly. The release's
  // model class has no contact head, so its tensors stay out of model.safetensors (transformers would call them
  // unexpected) and go beside it, so that a reloaded model computes the same contacts.
  save_safetensors(dir / "model.safetensors", model_tensors, {{"format", "pt"}});
  save_safetensors(dir / kContactHeadFile, contact_tensors, {{"format", "pt"}, {"content", "sapling contact head"}});
  for (const auto& file : modelling_files_) {
    const auto target = dir / file.filename();
    std::error_code ec;
    if (std::filesystem::equivalent(file, target, ec)) continue;
    write_file_atomic(target, read_file(file));
  }
  config_.write_json(dir / "config.json", torch_dtype_name(encoder->weight.scalar_type()), !modelling_files_.empty());
}

void AmplifyModel::save_tokenizer(const std::filesystem::path& dir) const {
  write_hf_tokenizer(dir, amplify_tokenizer(), HfTokenizerLayout::FastWordLevel, config_.max_length);
}

}  // namespace sapling::amplify
