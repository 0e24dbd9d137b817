// Tokenizer recipes (`sapling train-tokenizer RECIPE`): recognising and validating them, shared with `sapling recipe`.
#pragma once
#include <string>

#include "sapling/options.hpp"
#include "sapling/recipe.hpp"

namespace sapling::cli {

// A recipe with a [tokenizer] table trains a structure tokenizer; its [data], [train] and [output] tables
// mean other things than a `sapling train` recipe's, so it is validated here and not by Recipe::validate().
bool is_tokenizer_recipe(const Recipe& recipe);

struct TokenizerRecipe {
  std::string component;  // the [tokenizer] component (a StructureTokenizer registration)
  Options tokenizer, data, train, output;
};

// Validates every table (unknown sections and keys, types, ranges, with file:line) against the tokenizer
// plugin's schema and the command's own; plugins must be loaded first.
TokenizerRecipe read_tokenizer_recipe(const Recipe& recipe);

}  // namespace sapling::cli
