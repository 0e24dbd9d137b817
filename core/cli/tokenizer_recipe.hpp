// Tokenizer recipes (`sapling train-tokenizer RECIPE`): recognising and validating them, shared with `sapling recipe`.
#pragma once
#include <string>

#include "sapling/options.hpp"
#include "sapling/recipe.hpp"
#include "sapling/internal/tokenizer_training.hpp"

namespace sapling::cli {

// A kind = "train-tokenizer" recipe trains a structure tokenizer; its [data], [train] and [output] tables
// mean other things than a `sapling train` recipe's, so it is validated here and not by Recipe::validate().
// Validates every table (unknown sections and keys, types, ranges, with file:line) against the tokenizer
// plugin's schema and the command's own; plugins must be loaded first. Fills all but the command-line fields.
TokenizerTrainingSettings read_tokenizer_recipe(const Recipe& recipe);

}  // namespace sapling::cli
