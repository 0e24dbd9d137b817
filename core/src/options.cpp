// Option schemas and strict validation of recipe tables against them.
#include "sapling/options.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/internal/hub_cache.hpp"
#include "sapling/log.hpp"
#include "sapling/internal/toml_location.hpp"

namespace sapling {

namespace {

// A path as a person would type it: `out/quickstart/best`, not `recipes/../out/quickstart/best` or an absolute
// path into the working folder.
std::string display_path(const std::filesystem::path& path) {
  const auto normal = path.lexically_normal();
  std::error_code ec;
  const auto cwd = std::filesystem::current_path(ec);
  if (ec || !normal.is_absolute()) return normal.string();
  const auto relative = normal.lexically_relative(cwd);
  if (relative.empty() || *relative.begin() == "..") return normal.string();
  return relative.string();
}

// Recipes are parsed more than once in a run (check, then each component); the warning is said once.
void warn_missing_input(const std::string& text) {
  static std::mutex mutex;
  static std::set<std::string> said;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!said.insert(text).second) return;
  }
  warn(text);
}
void warn_missing_input(const std::string& prefix, const std::filesystem::path& path) {
  warn_missing_input(prefix + ": '" + display_path(path) + "' does not exist (yet)");
}

}  // namespace

const char* option_type_name(OptionType type) {
  switch (type) {
    case OptionType::Bool: return "a boolean";
    case OptionType::Int: return "an integer";
    case OptionType::Float: return "a number";
    case OptionType::String: return "a string";
    case OptionType::Path: return "a path string";
    case OptionType::IntList: return "an array of integers";
    case OptionType::FloatList: return "an array of numbers";
    case OptionType::StringList: return "an array of strings";
  }
  return "?";
}

OptionSpec& OptionSchema::add(const std::string& name, OptionType type) {
  for (const auto& s : specs_)
    if (s.name == name) fail("internal: option '", name, "' declared twice");
  specs_.push_back(OptionSpec{});
  specs_.back().name = name;
  specs_.back().type = type;
  return specs_.back();
}

const OptionSpec* OptionSchema::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> OptionSchema::names() const {
  std::vector<std::string> out;
  for (const auto& s : specs_) out.push_back(s.name);
  return out;
}

namespace {

std::string value_text(const OptionValue& v) {
  std::ostringstream os;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>)
          os << (x ? "true" : "false");
        else if constexpr (std::is_same_v<T, std::string>)
          os << '"' << x << '"';
        else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>)
          os << x;
        else {
          os << '[';
          for (size_t i = 0; i < x.size(); ++i) {
            if (i) os << ", ";
            if constexpr (std::is_same_v<T, std::vector<std::string>>)
              os << '"' << x[i] << '"';
            else
              os << x[i];
          }
          os << ']';
        }
      },
      v);
  return os.str();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string dir_of(const toml::source_region& src) {
  if (!src.path || src.path->empty() || *src.path == "command line") return "";
  return std::filesystem::path(*src.path).parent_path().string();
}

// Converts one TOML node to the declared type, or explains the mismatch.
std::optional<OptionValue> convert(const toml::node& node, OptionType type) {
  auto scalar_list = [&](auto tag) -> std::optional<OptionValue> {
    using T = decltype(tag);
    const auto* arr = node.as_array();
    if (!arr) return std::nullopt;
    std::vector<T> out;
    for (const auto& el : *arr) {
      if constexpr (std::is_same_v<T, double>) {
        if (el.is_integer())
          out.push_back(static_cast<double>(el.value<int64_t>().value()));
        else if (el.is_floating_point())
          out.push_back(el.value<double>().value());
        else
          return std::nullopt;
      } else if constexpr (std::is_same_v<T, int64_t>) {
        if (!el.is_integer()) return std::nullopt;
        out.push_back(el.value<int64_t>().value());
      } else {
        if (!el.is_string()) return std::nullopt;
        out.push_back(el.value<std::string>().value());
      }
    }
    return OptionValue(std::move(out));
  };
  switch (type) {
    case OptionType::Bool:
      if (node.is_boolean()) return OptionValue(node.value<bool>().value());
      return std::nullopt;
    case OptionType::Int:
      if (node.is_integer()) return OptionValue(node.value<int64_t>().value());
      return std::nullopt;
    case OptionType::Float:
      if (node.is_integer()) return OptionValue(static_cast<double>(node.value<int64_t>().value()));
      if (node.is_floating_point()) return OptionValue(node.value<double>().value());
      return std::nullopt;
    case OptionType::String:
    case OptionType::Path:
      if (node.is_string()) return OptionValue(node.value<std::string>().value());
      return std::nullopt;
    case OptionType::IntList: return scalar_list(int64_t{});
    case OptionType::FloatList: return scalar_list(double{});
    case OptionType::StringList: return scalar_list(std::string{});
  }
  return std::nullopt;
}

void check_range(const OptionSpec& spec, const OptionValue& value, const std::string& prefix) {
  auto check_number = [&](double x) {
    if (std::isnan(x)) fail(prefix, ": NaN is not allowed");
    if (std::isinf(x)) fail(prefix, ": infinity is not allowed");
    if (spec.min_value && (x < *spec.min_value || (spec.min_exclusive && x == *spec.min_value)))
      fail(prefix, ": value ", x, " is out of range (expected ", spec.min_exclusive ? "> " : ">= ", *spec.min_value,
           ")");
    if (spec.max_value && (x > *spec.max_value || (spec.max_exclusive && x == *spec.max_value)))
      fail(prefix, ": value ", x, " is out of range (expected ", spec.max_exclusive ? "< " : "<= ", *spec.max_value,
           ")");
  };
  auto check_choice = [&](const std::string& s) {
    if (spec.choices.empty()) return;
    if (std::find(spec.choices.begin(), spec.choices.end(), s) != spec.choices.end()) return;
    std::string list;
    for (const auto& c : spec.choices) list += (list.empty() ? "" : ", ") + c;
    fail(prefix, ": '", s, "' is not one of: ", list, did_you_mean(s, spec.choices));
  };
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>)
          check_number(static_cast<double>(x));
        else if constexpr (std::is_same_v<T, std::string>)
          check_choice(x);
        else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
          for (auto v : x) check_number(static_cast<double>(v));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          for (const auto& v : x) check_choice(v);
        }
      },
      value);
}

}  // namespace

std::string OptionSchema::describe(const std::string& indent) const {
  std::ostringstream os;
  for (const auto& s : specs_) {
    os << indent << s.name << " (" << option_type_name(s.type) << ")";
    if (s.required)
      os << ", required";
    else if (s.default_)
      os << ", default " << value_text(*s.default_);
    if (!s.choices.empty()) {
      os << ", one of";
      for (const auto& c : s.choices) os << " " << c;
    }
    if (!s.help.empty()) os << ": " << s.help;
    os << "\n";
  }
  return os.str();
}

std::optional<std::string> nearest_name(const std::string& word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  if (!best) return std::nullopt;
  // A likely typo: a few edits, or one name containing the other.
  const size_t limit = std::max<size_t>(2, std::max(word.size(), best->size()) / 3);
  if (best_d <= limit) return best;
  for (const auto& c : candidates)
    if (word.size() >= 3 && (c.find(word) != std::string::npos || word.find(c) != std::string::npos)) return c;
  return std::nullopt;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  auto n = nearest_name(word, candidates);
  return n ? " (did you mean '" + *n + "'?)" : "";
}

Options Options::from_toml(const toml::table& table, const OptionSchema& schema, const std::string& section,
                           const std::vector<std::string>& skip) {
  Options out;
  out.section_ = section;
  const std::string label = section.empty() ? "" : "[" + section + "] ";
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    if (std::find(skip.begin(), skip.end(), k) != skip.end()) continue;
    const std::string prefix = toml_location(node.source()) + ": " + label + "key '" + k + "'";
    const OptionSpec* spec = schema.find(k);
    if (!spec) {
      auto valid = schema.names();
      std::string hint = did_you_mean(k, valid);
      if (hint.empty() && !valid.empty()) {
        hint = " (valid keys:";
        for (const auto& v : valid) hint += " " + v;
        hint += ")";
      }
      fail(prefix, ": unknown key", hint);
    }
    auto value = convert(node, spec->type);
    if (!value) fail(prefix, ": wrong type, expected ", option_type_name(spec->type));
    check_range(*spec, *value, prefix);
    if (spec->must_exist) {
      // `recipe check` should point at a misspelt model folder, not the run an hour later.
      std::filesystem::path path = std::get<std::string>(*value);
      const std::string base_dir = dir_of(node.source());
      if (path.is_relative() && !base_dir.empty()) path = std::filesystem::path(base_dir) / path;
      std::error_code ec;
      // A warning, not an error: shipped recipes name inputs that another run
      // (a reference model) or the user (downloaded weights) provides later;
      // the component fails with the same file:line when it is built.
      const auto& text = std::get<std::string>(*value);
      if (!std::filesystem::exists(path, ec)) {
        if (!looks_like_hub_id(text)) warn_missing_input(prefix, path);
        else if (!find_hub_snapshot(text)) warn_missing_input(prefix + ": " + hub_download_hint(text));
      }
    }
    out.values_[k] = Entry{std::move(*value), toml_location(node.source()), dir_of(node.source())};
  }
  for (const auto& spec : schema.specs()) {
    if (out.values_.count(spec.name)) continue;
    if (spec.required) {
      const std::string file = table.source().path ? *table.source().path : std::string("<recipe>");
      fail(file, ":", table.source().begin.line, ": ", label, "missing required key '", spec.name, "' (",
           option_type_name(spec.type), spec.help.empty() ? "" : ": " + spec.help, ")");
    }
    if (spec.default_) out.values_[spec.name] = Entry{*spec.default_, "default", ""};
  }
  return out;
}

Options Options::defaults(const OptionSchema& schema, const std::string& section) {
  Options out;
  out.section_ = section;
  for (const auto& spec : schema.specs())
    if (spec.default_) out.values_[spec.name] = Entry{*spec.default_, "default", ""};
  return out;
}

Options& Options::set(const std::string& key, OptionValue value, const std::string& base_dir) {
  values_[key] = Entry{std::move(value), "set in code", base_dir};
  return *this;
}

std::vector<std::string> Options::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : values_) out.push_back(kv.first);
  return out;
}

std::string Options::to_string(const std::string& key) const { return value_text(at(key, "any").value); }

const Options::Entry& Options::at(const std::string& key, const char* wanted) const {
  auto it = values_.find(key);
  if (it == values_.end())
    fail(section_.empty() ? "" : "[" + section_ + "] ", "option '", key, "' is not set (", wanted, " expected)");
  return it->second;
}

std::string Options::origin(const std::string& key) const { return at(key, "any").origin; }

namespace {
template <typename T>
const T& get_as(const OptionValue& v, const std::string& key, const char* wanted) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  fail("option '", key, "' is not ", wanted);
}
}  // namespace

bool Options::get_bool(const std::string& key) const { return get_as<bool>(at(key, "bool").value, key, "a boolean"); }
int64_t Options::get_int(const std::string& key) const { return get_as<int64_t>(at(key, "int").value, key, "an integer"); }
double Options::get_float(const std::string& key) const {
  const auto& v = at(key, "float").value;
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return get_as<double>(v, key, "a number");
}
std::string Options::get_string(const std::string& key) const {
  return get_as<std::string>(at(key, "string").value, key, "a string");
}
std::filesystem::path Options::get_path(const std::string& key) const {
  const auto& e = at(key, "path");
  std::filesystem::path p = get_as<std::string>(e.value, key, "a path");
  if (p.empty() || p.is_absolute() || e.base_dir.empty()) return p;
  return std::filesystem::path(e.base_dir) / p;
}
std::filesystem::path Options::get_model_path(const std::string& key) const {
  const auto text = get_as<std::string>(at(key, "path").value, key, "a path");
  try {
    return resolve_model_folder(text, get_path(key));
  } catch (const Error&) {
    rethrow_with_context(origin(key));
  }
}
std::vector<int64_t> Options::get_int_list(const std::string& key) const {
  return get_as<std::vector<int64_t>>(at(key, "int list").value, key, "an array of integers");
}
std::vector<double> Options::get_float_list(const std::string& key) const {
  return get_as<std::vector<double>>(at(key, "float list").value, key, "an array of numbers");
}
std::vector<std::string> Options::get_string_list(const std::string& key) const {
  return get_as<std::vector<std::string>>(at(key, "string list").value, key, "an array of strings");
}

}  // namespace sapling
