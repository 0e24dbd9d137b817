// Component options from the command line: `--set TABLE.key=value` (and the old per-component flags) -> validated Options.
#include "component_options.hpp"

#include "sapling/deprecation.hpp"
#include "sapling/error.hpp"

namespace sapling::cli {

namespace po = boost::program_options;

Options options_from_pairs(const OptionSchema& schema, const std::vector<std::string>& pairs, const std::string& flag,
                           const std::string& section) {
  toml::table table;
  for (const auto& pair : pairs) {
    const std::string shown = !flag.empty() && flag.back() == '.' ? flag + pair : flag + " '" + pair + "'";
    const size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) fail(shown, ": expected key=value");
    const std::string key = pair.substr(0, eq), value = pair.substr(eq + 1);
    const OptionSpec* spec = schema.find(key);
    if (!spec) fail(shown, ": [", section, "] has no option '", key, "'", did_you_mean(key, schema.names()));
    toml::table parsed;
    bool literal = spec->type == OptionType::String || spec->type == OptionType::Path;
    if (!literal) {
      try {
        parsed = toml::parse("v = " + value, std::string_view("command line"));
      } catch (const toml::parse_error&) {
        literal = true;  // not TOML: the schema check below names the expected type
      }
    }
    if (literal) parsed.insert_or_assign("v", value);
    // Moved, not copied, so the value keeps its "command line" source region.
    table.insert_or_assign(key, std::move(*parsed.get("v")));
  }
  return Options::from_toml(table, schema, section, {});
}

void add_component_set_option(po::options_description& desc, const std::vector<ComponentTable>& tables) {
  std::string names;
  for (const auto& t : tables) names += (names.empty() ? "" : ", ") + t.table;
  desc.add_options()("set", po::value<std::vector<std::string>>(),
                     ("component option TABLE.key=value (repeatable; TABLE: " + names + ")").c_str());
  for (const auto& t : tables)
    for (const auto& old : t.old_flags)
      desc.add_options()(old.substr(2).c_str(), po::value<std::vector<std::string>>(),
                         ("old name of --set " + t.table + ".key=value").c_str());
}

std::vector<std::string> renamed_flag_pairs(const po::variables_map& vm, const ComponentTable& component) {
  std::vector<std::string> pairs;
  for (const auto& old : component.old_flags) {
    if (!vm.count(old.substr(2))) continue;
    warn_renamed(old + " key=value", "--set " + component.table + ".key=value");
    for (const auto& pair : vm[old.substr(2)].as<std::vector<std::string>>()) pairs.push_back(pair);
  }
  return pairs;
}

std::vector<std::string> component_pairs(const po::variables_map& vm, const std::string& table,
                                         const std::vector<ComponentTable>& tables) {
  std::vector<std::string> pairs;
  if (vm.count("set")) {
    for (const auto& text : vm["set"].as<std::vector<std::string>>()) {
      const size_t dot = text.find('.'), eq = text.find('=');
      const std::string named = dot < eq ? text.substr(0, dot) : "";
      bool known = false;
      for (const auto& t : tables) known = known || t.table == named;
      if (!known) {
        std::string names;
        for (const auto& t : tables) names += (names.empty() ? "" : ", ") + t.table;
        fail("--set ", text, ": expected TABLE.key=value with TABLE one of ", names);
      }
      if (named == table) pairs.push_back(text.substr(dot + 1));
    }
  }
  for (const auto& t : tables)
    if (t.table == table)
      for (auto& pair : renamed_flag_pairs(vm, t)) pairs.push_back(std::move(pair));
  return pairs;
}

}  // namespace sapling::cli
