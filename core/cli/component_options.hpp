// `--set TABLE.key=value` pairs -> Options of a registered component, typed and validated by its schema.
#pragma once
#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "sapling/options.hpp"

namespace sapling::cli {

// Each pair is "key=value"; the value is read as TOML ("32", "1e-3", "true",
// "[32, 32]", "\"text\"") and taken literally as a string when it is not
// TOML (paths, names). Validated like a recipe table of `section`, so unknown
// keys, wrong types and out-of-range values fail naming `flag` and the key.
// A `flag` ending in '.' is a `--set TABLE.` prefix: errors show the pair glued to it, as it was typed.
Options options_from_pairs(const OptionSchema& schema, const std::vector<std::string>& pairs, const std::string& flag,
                           const std::string& section);

// One component of a command without a recipe (prepare, tokens, eval): its table (named as in a recipe:
// tokenizer, pgnn; task for eval's task) and the flags that set its options before `--set TABLE.key=value`.
struct ComponentTable {
  std::string table;
  std::vector<std::string> old_flags;  // e.g. --tokenizer-option: still read for one release, with a warning
};

// Adds `--set TABLE.key=value` (repeatable) and each table's old flags (hidden from nothing: described as old names).
void add_component_set_option(boost::program_options::options_description& desc,
                              const std::vector<ComponentTable>& tables);

// The values of `component`'s old flags (each old flag used warns once, naming --set TABLE.key=value).
std::vector<std::string> renamed_flag_pairs(const boost::program_options::variables_map& vm,
                                            const ComponentTable& component);

// The key=value pairs of `table`: its `--set TABLE.key=value` values in order, then its old flags' values
// (renamed_flag_pairs). A --set value whose table is none of `tables` fails, naming them.
std::vector<std::string> component_pairs(const boost::program_options::variables_map& vm, const std::string& table,
                                         const std::vector<ComponentTable>& tables);

}  // namespace sapling::cli
