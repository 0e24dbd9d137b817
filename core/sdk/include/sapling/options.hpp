// Typed, validated component options: the schema a plugin declares and the values a recipe gives it.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "sapling/export.hpp"

#include <toml++/toml.h>  // for toml::table (recipes)

namespace sapling {

enum class OptionType { Bool, Int, Float, String, Path, IntList, FloatList, StringList };

SAPLING_API const char* option_type_name(OptionType type);

using OptionValue =
    std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>, std::vector<std::string>>;

// One option of a component: name, type, default or required, allowed range
// or choices, one line of documentation. Built with chained setters:
//   schema.add("learning_rate", OptionType::Float).default_value(1e-4).min(0, true).doc("peak LR");
struct SAPLING_API OptionSpec {
  std::string name;
  OptionType type = OptionType::String;
  bool required = false;
  std::optional<OptionValue> default_;
  std::optional<double> min_value, max_value;
  bool min_exclusive = false, max_exclusive = false;
  std::vector<std::string> choices;
  std::string help;
  bool must_exist = false;  // Path options naming an input: checked when a recipe sets them

  OptionSpec& default_value(OptionValue v) { default_ = std::move(v); return *this; }
  OptionSpec& require() { required = true; return *this; }
  OptionSpec& min(double v, bool exclusive = false) { min_value = v; min_exclusive = exclusive; return *this; }
  OptionSpec& max(double v, bool exclusive = false) { max_value = v; max_exclusive = exclusive; return *this; }
  OptionSpec& one_of(std::vector<std::string> values) { choices = std::move(values); return *this; }
  OptionSpec& doc(std::string text) { help = std::move(text); return *this; }
  OptionSpec& existing() { must_exist = true; return *this; }
};

class SAPLING_API OptionSchema {
 public:
  OptionSpec& add(const std::string& name, OptionType type);
  const std::vector<OptionSpec>& specs() const { return specs_; }
  const OptionSpec* find(const std::string& name) const;
  std::vector<std::string> names() const;
  // Human-readable listing for --help and `plugins list --verbose`.
  std::string describe(const std::string& indent = "  ") const;

 private:
  std::vector<OptionSpec> specs_;
};

// Validated values (defaults filled in). Each value remembers where it came
// from so path options resolve relative to the recipe file that set them.
class SAPLING_API Options {
 public:
  Options() = default;

  // Validates `table` against `schema`: unknown key (with the nearest valid
  // key), wrong type, missing required option, value out of range or not one
  // of the choices all fail with "file:line: [section] key 'x': ...".
  // `skip` lists keys handled by the caller (a recipe's "component").
  static Options from_toml(const toml::table& table, const OptionSchema& schema, const std::string& section,
                           const std::vector<std::string>& skip = {"component"});
  // Defaults only (for programmatic construction in tests and tools).
  static Options defaults(const OptionSchema& schema, const std::string& section = "");

  bool has(const std::string& key) const { return values_.count(key) != 0; }
  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::filesystem::path get_path(const std::string& key) const;  // resolved
  // A model folder: get_path, or a hub id's snapshot in the local Hugging Face cache (hub_cache.hpp).
  std::filesystem::path get_model_path(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;
  std::vector<double> get_float_list(const std::string& key) const;
  std::vector<std::string> get_string_list(const std::string& key) const;
  // "file:line" of a key's value, or "default" / "command line".
  std::string origin(const std::string& key) const;
  const std::string& section() const { return section_; }

  // Programmatic set (validated against nothing: for tests and internal use).
  Options& set(const std::string& key, OptionValue value, const std::string& base_dir = "");
  std::vector<std::string> keys() const;
  std::string to_string(const std::string& key) const;

 private:
  struct Entry {
    OptionValue value;
    std::string origin;
    std::string base_dir;  // for relative paths
  };
  const Entry& at(const std::string& key, const char* wanted) const;
  std::map<std::string, Entry> values_;
  std::string section_;
};

// Levenshtein-nearest candidate if it is close enough to be a likely typo.
SAPLING_API std::optional<std::string> nearest_name(const std::string& word, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "".
SAPLING_API std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace sapling
