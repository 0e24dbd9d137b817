// Reads a plugin's conformance.toml and turns its tables into validated component options.
#include "examples.hpp"

#include "sapling/error.hpp"
#include "sapling/internal/toml_location.hpp"

namespace sapling::conformance {

namespace {

const toml::table* subtable(const toml::table* table, const std::string& key) {
  return table ? table->get_as<toml::table>(key) : nullptr;
}

}  // namespace

Examples::Examples() : table_(std::make_shared<toml::table>()) {}

Examples Examples::load(const std::filesystem::path& file) {
  Examples out;
  out.file_ = std::filesystem::absolute(file);
  if (!std::filesystem::is_regular_file(out.file_)) fail(out.file_.string(), ": no such examples file");
  try {
    out.table_ = std::make_shared<toml::table>(toml::parse_file(out.file_.string()));
  } catch (const toml::parse_error& e) {
    fail(toml_location(e.source(), out.file_.string()), ": ", e.description());
  }
  for (const auto& [key, node] : *out.table_)
    if (!node.is_table())
      fail(toml_location(node.source(), out.file_.string()), ": key '", key.str(),
           "' must be a table ([inputs] or [KIND.NAME], e.g. [alignment_loss.my_loss])");
  return out;
}

std::vector<std::pair<std::string, std::string>> Examples::components() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [kind, node] : *table_) {
    if (kind.str() == "inputs") continue;
    for (const auto& [name, table] : *node.as_table()) {
      if (!table.is_table())
        fail(toml_location(table.source(), file_.string()), ": [", kind.str(), "] ", name.str(), " must be a table ([",
             kind.str(), ".", name.str(), "] with options, generate or train)");
      out.emplace_back(std::string(kind.str()), std::string(name.str()));
    }
  }
  return out;
}

const toml::table* Examples::component(const std::string& kind, const std::string& name) const {
  return subtable(subtable(table_.get(), kind), name);
}

Options Examples::options(const std::string& kind, const std::string& name, const OptionSchema& schema) const {
  const std::string section = kind + "." + name + ".options";
  if (const auto* options = subtable(component(kind, name), "options"))
    return Options::from_toml(*options, schema, section, {});
  return Options::defaults(schema, section);
}

double Examples::train_setting(const std::string& kind, const std::string& name, const std::string& key,
                               double fallback) const {
  const auto* train = subtable(component(kind, name), "train");
  if (!train || !train->contains(key)) return fallback;
  const auto value = (*train)[key].value<double>();
  if (!value) fail(file_.string(), ": [", kind, ".", name, "] train.", key, " must be a number");
  return *value;
}

std::vector<std::filesystem::path> Examples::structures() const {
  std::vector<std::filesystem::path> out;
  const auto* inputs = subtable(table_.get(), "inputs");
  if (!inputs || !inputs->contains("structures")) return out;
  const auto* files = (*inputs)["structures"].as_array();
  if (!files) fail(file_.string(), ": [inputs] structures must be a list of structure files");
  for (const auto& node : *files) {
    const auto path = node.value<std::string>();
    if (!path) fail(file_.string(), ": [inputs] structures must be a list of structure files (strings)");
    out.push_back(std::filesystem::path(*path).is_absolute() ? std::filesystem::path(*path)
                                                             : file_.parent_path() / *path);
    if (!std::filesystem::exists(out.back()))
      fail(file_.string(), ": [inputs] structures: ", out.back().string(), " does not exist");
  }
  return out;
}

const toml::table* Examples::inputs(const std::string& key) const {
  return subtable(subtable(table_.get(), "inputs"), key);
}

Options Examples::input_options(const std::string& key, const OptionSchema& schema) const {
  const std::string section = "inputs." + key + ".options";
  if (const auto* options = subtable(inputs(key), "options")) return Options::from_toml(*options, schema, section, {});
  return Options::defaults(schema, section);
}

}  // namespace sapling::conformance
