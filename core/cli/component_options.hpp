// `--flag key=value` pairs -> Options of a registered component, typed and validated by its schema.
#pragma once
#include <string>
#include <vector>

#include "sapling/options.hpp"

namespace sapling::cli {

// Each pair is "key=value"; the value is read as TOML ("32", "1e-3", "true",
// "[32, 32]", "\"text\"") and taken literally as a string when it is not
// TOML (paths, names). Validated like a recipe table of `section`, so unknown
// keys, wrong types and out-of-range values fail naming `flag` and the key.
Options options_from_pairs(const OptionSchema& schema, const std::vector<std::string>& pairs, const std::string& flag,
                           const std::string& section);

}  // namespace sapling::cli
