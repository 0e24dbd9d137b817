// Tokenizer recipes: the [tokenizer], [data], [train] and [output] tables of `sapling train-tokenizer`, validated.
#include "tokenizer_recipe.hpp"

#include <algorithm>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "sapling/internal/toml_location.hpp"

namespace sapling::cli {

namespace {

OptionSchema data_schema() {
  OptionSchema s;
  // Not .existing(): shipped recipes name a folder the user makes first (checked when training starts).
  s.add("dataset", OptionType::Path).require().doc("structure dataset folder from `sapling prepare`");
  s.add("split", OptionType::String).default_value(std::string("train")).doc("split to train on (\"all\": every chain)");
  s.add("valid_split", OptionType::String)
      .default_value(std::string("valid"))
      .doc("split evaluated after every epoch (the training chains when the dataset has none)");
  return s;
}

OptionSchema train_schema() {
  OptionSchema s;
  s.add("epochs", OptionType::Int).default_value(int64_t{20}).min(1).doc("passes over the training chains");
  s.add("batch_chains", OptionType::Int).default_value(int64_t{16}).min(1).doc("chains per optimiser step");
  s.add("lr", OptionType::Float).default_value(1e-3).min(0, true).doc("Adam learning rate");
  s.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the chain order and the codebook's random draws");
  return s;
}

OptionSchema output_schema() {
  OptionSchema s;
  s.add("weights", OptionType::Path).require().doc("weights file (.safetensors), rewritten atomically after every epoch");
  s.add("metrics", OptionType::Path).doc("JSON-lines file: one record per epoch");
  s.add("tensorboard", OptionType::Path).doc("folder for TensorBoard event files: train/* and valid/* per epoch");
  return s;
}

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> names = {"tokenizer", "data", "train", "output", "plugins"};
  return names;
}

Options section_options(const Recipe& recipe, const std::string& name, const OptionSchema& schema) {
  const toml::node* node = recipe.table().get(name);
  if (!node) return Options::from_toml(toml::table{}, schema, name, {});
  if (!node->is_table()) fail(toml_location(node->source()), ": '", name, "' must be a table");
  return Options::from_toml(*node->as_table(), schema, name, {});
}

}  // namespace

bool is_tokenizer_recipe(const Recipe& recipe) { return recipe.has_section("tokenizer"); }

TokenizerRecipe read_tokenizer_recipe(const Recipe& recipe) {
  for (const auto& [key, node] : recipe.table()) {
    const std::string name(key.str());
    if (std::find(section_names().begin(), section_names().end(), name) == section_names().end())
      fail(toml_location(node.source()), ": unknown section '", name, "' in a tokenizer recipe",
           did_you_mean(name, section_names()), " (expected tokenizer, data, train, output, plugins)");
  }
  const toml::node* node = recipe.table().get("tokenizer");
  if (!node->is_table()) fail(toml_location(node->source()), ": 'tokenizer' must be a table");
  const toml::table& table = *node->as_table();
  const toml::node* component = table.get(kComponentKey);
  if (!component)
    fail(toml_location(node->source()), ": [tokenizer] needs a key 'component' naming a structure tokenizer");
  if (!component->is_string())
    fail(toml_location(component->source()), ": [tokenizer] key 'component': expected a string");
  TokenizerRecipe r;
  r.component = component->value<std::string>().value();
  const auto& registry = StructureTokenizerRegistry::instance();
  if (!registry.contains(r.component))
    fail(toml_location(component->source()), ": [tokenizer] key 'component': no structure tokenizer named '", r.component,
         "'", did_you_mean(r.component, registry.names()));
  r.tokenizer = Options::from_toml(table, registry.find(r.component).schema, "tokenizer", {kComponentKey});
  if (recipe.has_section("plugins")) recipe.settings("plugins");
  r.data = section_options(recipe, "data", data_schema());
  r.train = section_options(recipe, "train", train_schema());
  r.output = section_options(recipe, "output", output_schema());
  return r;
}

}  // namespace sapling::cli
