// What a recipe is for, declared by its top-level `kind = "..."`: the command that runs it.
#pragma once
#include <string>

#include "sapling/export.hpp"
#include "sapling/recipe.hpp"

namespace sapling {

enum class RecipeKind {
  Train,           // kind = "train": `sapling train` ([model], [data], [losses.*], ...)
  TrainTokenizer,  // kind = "train-tokenizer": `sapling train-tokenizer` ([tokenizer], [data], [train], [output])
  PretrainPgnn,    // kind = "pretrain-pgnn": `sapling pretrain-pgnn --recipe` ([pgnn], [objective], [data], ...)
};

inline constexpr const char* kRecipeKindKey = "kind";

// "train", "train-tokenizer", "pretrain-pgnn": the value of `kind` and the command's name.
SAPLING_API std::string recipe_kind_name(RecipeKind kind);

// The kind the recipe declares. A recipe without `kind` (accepted for sapling 0.2 only) gets the kind its
// sections suggest ([tokenizer]: train-tokenizer, else train) and one warning per file naming the key to add.
// Fails naming file:line for a `kind` that is not a string or not one of the kinds.
SAPLING_API RecipeKind recipe_kind(const Recipe& recipe);

// Fails unless the recipe is of kind `expected`, naming the command that runs it instead.
SAPLING_API void require_recipe_kind(const Recipe& recipe, RecipeKind expected);

}  // namespace sapling
