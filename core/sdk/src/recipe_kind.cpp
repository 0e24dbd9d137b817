// Recipe kinds: the declared `kind` key, and the guess from the sections for files written before it existed.
#include "sapling/recipe_kind.hpp"

#include <mutex>
#include <set>

#include "sapling/error.hpp"
#include "sapling/log.hpp"
#include "sapling/options.hpp"
#include "sapling/internal/toml_location.hpp"

namespace sapling {

namespace {

const std::vector<RecipeKind>& all_kinds() {
  static const std::vector<RecipeKind> kinds = {RecipeKind::Train, RecipeKind::TrainTokenizer, RecipeKind::PretrainPgnn};
  return kinds;
}

std::vector<std::string> kind_names() {
  std::vector<std::string> names;
  for (RecipeKind k : all_kinds()) names.push_back(recipe_kind_name(k));
  return names;
}

// One warning per recipe file and process (train, check and copy may each ask).
void warn_undeclared(const Recipe& recipe, RecipeKind guess) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  const std::lock_guard<std::mutex> lock(mutex);
  if (!warned.insert(recipe.path().string()).second) return;
  warn(recipe.path().string(), ": no 'kind' key; taken as kind = \"", recipe_kind_name(guess),
       "\" from its sections. Add `kind = \"", recipe_kind_name(guess),
       "\"` at the top of the file (a recipe without it is accepted by sapling 0.2 only)");
}

}  // namespace

std::string recipe_kind_name(RecipeKind kind) {
  switch (kind) {
    case RecipeKind::Train: return "train";
    case RecipeKind::TrainTokenizer: return "train-tokenizer";
    case RecipeKind::PretrainPgnn: return "pretrain-pgnn";
  }
  return "train";
}

RecipeKind recipe_kind(const Recipe& recipe) {
  const toml::node* node = recipe.table().get(kRecipeKindKey);
  if (!node) {
    const RecipeKind guess = recipe.has_section("tokenizer") ? RecipeKind::TrainTokenizer : RecipeKind::Train;
    warn_undeclared(recipe, guess);
    return guess;
  }
  if (!node->is_string())
    fail(toml_location(node->source()), ": key 'kind': expected a string, one of train, train-tokenizer, pretrain-pgnn");
  const std::string value = node->value<std::string>().value();
  for (RecipeKind k : all_kinds())
    if (recipe_kind_name(k) == value) return k;
  fail(toml_location(node->source()), ": key 'kind': unknown recipe kind '", value, "'", did_you_mean(value, kind_names()),
       " (expected train, train-tokenizer or pretrain-pgnn: the command that runs the recipe)");
}

void require_recipe_kind(const Recipe& recipe, RecipeKind expected) {
  const RecipeKind kind = recipe_kind(recipe);
  if (kind == expected) return;
  const std::string name = recipe_kind_name(kind);
  fail(recipe.path().string(), ": a kind = \"", name, "\" recipe; `sapling ", recipe_kind_name(expected),
       "` runs kind = \"", recipe_kind_name(expected), "\" recipes (run this one with `sapling ", name,
       kind == RecipeKind::PretrainPgnn ? " --recipe FILE`)" : " FILE`)");
}

}  // namespace sapling
