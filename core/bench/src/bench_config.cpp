// BENCH.toml: strict parsing with file:line errors, and the stable identities and hashes that key the cell cache.
#include <cstdio>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "sapling/internal/bench.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/internal/toml_location.hpp"

namespace fs = std::filesystem;

namespace sapling::bench {
namespace {

std::string where(const toml::node& node) { return toml_location(node.source(), "<bench>"); }

const char* node_type(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// Fails on any key of `table` not in `allowed`, suggesting the nearest one.
void check_keys(const toml::table& table, const std::vector<std::string>& allowed, const std::string& label) {
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    bool known = false;
    for (const auto& a : allowed) known = known || a == k;
    if (!known) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      const bool top_level = k == "models" || k == "tasks" || k == "seeds" || k == "baseline" || k == "output";
      fail(where(node), ": ", label, "unknown key '", k, "'", did_you_mean(k, allowed), " (expected one of: ", list, ")",
           top_level && !label.empty()
               ? "; top-level keys must come before the first [[models]] or [[tasks]] table, or TOML puts them in it"
               : "");
    }
  }
}

std::string get_string(const toml::node& node, const std::string& label) {
  if (!node.is_string()) fail(where(node), ": ", label, ": expected a string, got ", node_type(node));
  return node.value<std::string>().value();
}

std::vector<std::string> get_strings(const toml::node& node, const std::string& label) {
  const auto* arr = node.as_array();
  if (!arr) fail(where(node), ": ", label, ": expected an array of strings, got ", node_type(node));
  std::vector<std::string> out;
  for (const auto& el : *arr) out.push_back(get_string(el, label));
  return out;
}

// File-name safe, so model names can name run folders and plots.
void check_name(const toml::node& node, const std::string& name, const std::string& label) {
  if (name.empty()) fail(where(node), ": ", label, ": must not be empty");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      fail(where(node), ": ", label, " '", name, "': use only letters, digits, '_', '-' and '.'");
}

fs::path relative_to(const fs::path& base_dir, const std::string& value) {
  const fs::path p(value);
  return fs::absolute(p.is_absolute() ? p : base_dir / p).lexically_normal();
}

// A non-string TOML value as `--option key=value` text (parsed back as TOML by `sapling eval`).
std::string toml_text(const toml::node& node) {
  std::ostringstream os;
  node.visit([&](const auto& v) { os << v; });
  return os.str();
}

Model parse_model(const toml::table& table, size_t index, const fs::path& base_dir) {
  const std::string label = "models[" + std::to_string(index) + "]";
  check_keys(table, {"name", "path", "recipe", "set"}, label + ": ");
  Model m;
  m.origin = where(table);
  const auto* name = table.get("name");
  if (!name) fail(m.origin, ": ", label, ": missing required key 'name'");
  m.name = get_string(*name, label + ".name");
  check_name(*name, m.name, label + ".name");
  const auto* path = table.get("path");
  const auto* recipe = table.get("recipe");
  if ((path != nullptr) == (recipe != nullptr))
    fail(m.origin, ": model '", m.name, "': give exactly one of `path` (an HF model folder) or `recipe` (trained first)");
  if (path) {
    m.path = relative_to(base_dir, get_string(*path, label + ".path"));
    if (const auto* set = table.get("set"))
      fail(where(*set), ": model '", m.name, "': `set` overrides a recipe; this model has a `path`");
  } else {
    m.recipe = relative_to(base_dir, get_string(*recipe, label + ".recipe"));
    if (!fs::is_regular_file(m.recipe))
      fail(where(*recipe), ": model '", m.name, "': recipe '", m.recipe.string(), "' does not exist");
    if (const auto* set = table.get("set")) {
      m.set = get_strings(*set, label + ".set");
      for (const auto& s : m.set)
        if (s.find('=') == std::string::npos || s.find('.') > s.find('='))
          fail(where(*set), ": model '", m.name, "': set entry '", s, "': expected table.key=value");
    }
  }
  return m;
}

Task parse_task(const toml::table& table, size_t index, const fs::path& base_dir, const TaskCatalog& catalog) {
  const std::string label = "tasks[" + std::to_string(index) + "]";
  check_keys(table, {"task", "label", "options", "metrics", "plot_metric"}, label + ": ");
  Task t;
  t.origin = where(table);
  const auto* task = table.get("task");
  if (!task) fail(t.origin, ": ", label, ": missing required key 'task'");
  t.task = get_string(*task, label + ".task");
  const OptionSchema* schema = catalog.schema ? catalog.schema(t.task) : nullptr;
  if (!schema) {
    std::string list;
    for (const auto& n : catalog.names) list += (list.empty() ? "" : ", ") + n;
    fail(where(*task), ": ", label, ": unknown evaluation task '", t.task, "'", did_you_mean(t.task, catalog.names),
         " (registered: ", list.empty() ? "none; are the plugins built?" : list, ")");
  }
  t.label = t.task;
  if (const auto* l = table.get("label")) {
    t.label = get_string(*l, label + ".label");
    check_name(*l, t.label, label + ".label");
  }
  toml::table empty;
  const toml::table* options = &empty;
  if (const auto* o = table.get("options")) {
    options = o->as_table();
    if (!options) fail(where(*o), ": ", label, ".options: expected a table of task options, got ", node_type(*o));
  }
  // Validated like a recipe section: unknown key, wrong type and range errors name file:line.
  const Options validated = Options::from_toml(*options, *schema, "tasks." + t.label + ".options", {});
  for (const auto& [key, node] : *options) {
    const std::string k(key.str());
    const auto* spec = schema->find(k);
    if (spec && spec->type == OptionType::Path) {
      // Relative paths are relative to the bench file, and `sapling eval` runs elsewhere.
      const std::string value = node.value<std::string>().value_or("");
      t.options.emplace_back(k, value.empty() ? value : relative_to(base_dir, value).string());
    } else if (spec && spec->type == OptionType::String) {
      // `sapling eval --option` takes string values literally: TOML quotes would become part of the value.
      t.options.emplace_back(k, node.value<std::string>().value_or(""));
    } else {
      t.options.emplace_back(k, toml_text(node));
    }
  }
  t.has_seed = schema->find("seed") != nullptr && !options->contains("seed");
  std::ostringstream canonical;
  for (const auto& key : validated.keys()) {
    if (key == "seed" && t.has_seed) continue;  // set per cell
    const auto* spec = schema->find(key);
    canonical << key << "="
              << (spec && spec->type == OptionType::Path ? validated.get_path(key).string() : validated.to_string(key))
              << "\n";
  }
  for (const auto& [k, v] : t.options) canonical << "explicit " << k << "=" << v << "\n";
  t.canonical_options = canonical.str();
  if (const auto* m = table.get("metrics")) t.metrics = get_strings(*m, label + ".metrics");
  if (const auto* p = table.get("plot_metric")) t.plot_metric = get_string(*p, label + ".plot_metric");
  return t;
}

}  // namespace

Config load_config(const fs::path& file, const TaskCatalog& catalog) {
  if (!fs::is_regular_file(file)) fail(file.string(), ": no such bench file");
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    fail(file.string(), ":", e.source().begin.line, ":", e.source().begin.column, ": TOML syntax error: ", e.description());
  }
  check_keys(root, {"models", "tasks", "seeds", "baseline", "output"}, "");
  Config config;
  config.file = fs::absolute(file).lexically_normal();
  const fs::path base_dir = config.file.parent_path();
  const std::string top = file.string() + ":1";

  auto array_of_tables = [&](const char* key) -> const toml::array& {
    const auto* node = root.get(key);
    if (!node) fail(top, ": missing required key '", key, "' (an array of tables: [[", key, "]])");
    const auto* arr = node->as_array();
    if (!arr || arr->empty() || !arr->is_array_of_tables())
      fail(where(*node), ": '", key, "': expected a non-empty array of tables ([[", key, "]])");
    return *arr;
  };
  const auto& models = array_of_tables("models");
  std::set<std::string> names;
  for (size_t i = 0; i < models.size(); ++i) {
    config.models.push_back(parse_model(*models[i].as_table(), i, base_dir));
    if (!names.insert(config.models.back().name).second)
      fail(config.models.back().origin, ": duplicate model name '", config.models.back().name, "'");
  }
  const auto& tasks = array_of_tables("tasks");
  std::set<std::string> labels;
  for (size_t i = 0; i < tasks.size(); ++i) {
    config.tasks.push_back(parse_task(*tasks[i].as_table(), i, base_dir, catalog));
    if (!labels.insert(config.tasks.back().label).second)
      fail(config.tasks.back().origin, ": duplicate task label '", config.tasks.back().label,
           "' (give the second one a `label`)");
  }

  const auto* seeds = root.get("seeds");
  if (!seeds) fail(top, ": missing required key 'seeds' (e.g. seeds = [0, 1, 2])");
  const auto* seed_arr = seeds->as_array();
  if (!seed_arr || seed_arr->empty()) fail(where(*seeds), ": 'seeds': expected a non-empty array of integers");
  std::set<int64_t> seen;
  for (const auto& el : *seed_arr) {
    if (!el.is_integer() || el.value<int64_t>().value() < 0)
      fail(where(el), ": 'seeds': expected non-negative integers, got ", el.is_integer() ? "a negative one" : node_type(el));
    const int64_t s = el.value<int64_t>().value();
    if (!seen.insert(s).second) fail(where(el), ": 'seeds': seed ", s, " is listed twice");
    config.seeds.push_back(s);
  }

  const auto* baseline = root.get("baseline");
  if (!baseline) fail(top, ": missing required key 'baseline' (the name of the model the others are compared to)");
  config.baseline = get_string(*baseline, "baseline");
  if (!names.count(config.baseline)) {
    const std::vector<std::string> all(names.begin(), names.end());
    fail(where(*baseline), ": baseline '", config.baseline, "' is not a model name", did_you_mean(config.baseline, all));
  }
  const auto* output = root.get("output");
  config.output = output ? relative_to(base_dir, get_string(*output, "output"))
                         : relative_to(base_dir, "bench_out/" + file.stem().string());
  return config;
}

std::string hash_hex(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // FNV-1a mixes the last bytes weakly (keys of seed 0 and 1 would share most digits): finish with splitmix64's mixer.
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string folder_identity(const fs::path& dir) {
  std::ostringstream os;
  os << "folder " << fs::absolute(dir).lexically_normal().string() << "\n";
  if (!fs::is_directory(dir)) return os.str();  // the cell then fails in `sapling eval` and is reported
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const auto ext = f.extension().string();
    if (ext == ".json") {
      os << f.filename().string() << " " << hash_hex(read_file(f)) << "\n";
    } else if (ext == ".safetensors") {
      // Weights are large: size and modification time stand for their content.
      const auto mtime = fs::last_write_time(f).time_since_epoch().count();
      os << f.filename().string() << " " << fs::file_size(f) << " " << mtime << "\n";
    }
  }
  return os.str();
}

std::string cell_key(const std::string& model_identity, const Task& task, int64_t seed) {
  std::ostringstream os;
  os << "sapling-bench-cell v1\n" << model_identity << "\ntask " << task.task << "\n" << task.canonical_options
     << "seed " << seed << "\n";
  return hash_hex(os.str());
}

}  // namespace sapling::bench
