// Parses `--flag key=value` pairs into a toml table and validates it against a component's option schema.
#include "component_options.hpp"

#include "sapling/error.hpp"

namespace sapling::cli {

Options options_from_pairs(const OptionSchema& schema, const std::vector<std::string>& pairs, const std::string& flag,
                           const std::string& section) {
  toml::table table;
  for (const auto& pair : pairs) {
    const size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) fail(flag, " '", pair, "': expected key=value");
    const std::string key = pair.substr(0, eq), value = pair.substr(eq + 1);
    const OptionSpec* spec = schema.find(key);
    if (!spec) fail(flag, " '", pair, "': [", section, "] has no option '", key, "'", did_you_mean(key, schema.names()));
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

}  // namespace sapling::cli
