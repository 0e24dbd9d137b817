// pretrain-pgnn recipes: the [pgnn], [objective], [data], [train] and [output] tables of `sapling pretrain-pgnn --recipe`.
#include "pretrain_recipe.hpp"

#include <algorithm>
#include <tuple>

#include "command.hpp"
#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/pretraining.hpp"
#include "sapling/recipe_kind.hpp"
#include "sapling/internal/toml_location.hpp"

namespace sapling::cli {

namespace {

OptionSchema pretrain_data_schema() {
  OptionSchema s;
  s.add("dataset", OptionType::Path).require().doc("structure dataset folder from `sapling prepare`");
  s.add("split", OptionType::String).default_value(std::string("train")).one_of({"train", "valid", "all"})
      .doc("split to train on");
  return s;
}

OptionSchema pretrain_train_schema() {
  OptionSchema s;
  s.add("steps", OptionType::Int).default_value(int64_t{1000}).min(1).doc("optimiser steps");
  s.add("batch_size", OptionType::Int).default_value(int64_t{8}).min(2).doc("chains per step (the contrastive negatives)");
  s.add("lr", OptionType::Float).default_value(1e-3).min(0, true).doc("Adam learning rate");
  s.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the initialisation, chain order, crops and masks");
  s.add("device", OptionType::String).default_value(std::string("cpu")).doc("cpu or cuda[:N]");
  s.add("checkpoint_every", OptionType::Int).default_value(int64_t{100}).min(1).doc("write [output] weights every N steps");
  s.add("init_weights", OptionType::Path).doc("start from these encoder weights instead of a random initialisation");
  return s;
}

OptionSchema pretrain_output_schema() {
  OptionSchema s;
  s.add("weights", OptionType::Path).require().doc("encoder weights file (.safetensors)");
  s.add("metrics", OptionType::Path).doc("JSON-lines file: one {step, loss, seconds} per step");
  s.add("tensorboard", OptionType::Path).doc("folder for TensorBoard event files (train/loss per step)");
  return s;
}

const std::vector<std::string>& pretrain_section_names() {
  static const std::vector<std::string> names = {"kind", "pgnn", "objective", "data", "train", "output", "plugins"};
  return names;
}

Options pretrain_section(const Recipe& recipe, const std::string& name, const OptionSchema& schema) {
  const toml::node* node = recipe.table().get(name);
  if (!node) return Options::from_toml(toml::table{}, schema, name, {});
  if (!node->is_table()) fail(toml_location(node->source()), ": '", name, "' must be a table");
  return Options::from_toml(*node->as_table(), schema, name, {});
}

// A component table ([pgnn] or [objective]): its `component` (the registry's default when absent) and options.
template <typename Interface>
std::pair<std::string, Options> pretrain_component(const Recipe& recipe, const std::string& name, const char* what) {
  const auto& registry = Registry<Interface>::instance();
  const toml::node* node = recipe.table().get(name);
  if (!node) {
    const std::string chosen = registry.default_name("[" + name + "] component");
    return {chosen, Options::defaults(registry.find(chosen).schema, name)};
  }
  if (!node->is_table()) fail(toml_location(node->source()), ": '", name, "' must be a table");
  const toml::table& table = *node->as_table();
  std::string chosen;
  if (const toml::node* component = table.get(kComponentKey)) {
    if (!component->is_string()) fail(toml_location(component->source()), ": [", name, "] key 'component': expected a string");
    chosen = component->value<std::string>().value();
    if (!registry.contains(chosen))
      fail(toml_location(component->source()), ": [", name, "] key 'component': no ", what, " named '", chosen, "'",
           did_you_mean(chosen, registry.names()));
  } else {
    chosen = registry.default_name("[" + name + "] component");
  }
  return {chosen, Options::from_toml(table, registry.find(chosen).schema, name, {kComponentKey})};
}

}  // namespace

StructurePretrainingSettings read_pretrain_recipe(const Recipe& recipe) {
  require_recipe_kind(recipe, RecipeKind::PretrainPgnn);
  for (const auto& [key, node] : recipe.table()) {
    const std::string name(key.str());
    const auto& names = pretrain_section_names();
    if (std::find(names.begin(), names.end(), name) == names.end())
      fail(toml_location(node.source()), ": unknown section '", name, "' in a pretrain-pgnn recipe", did_you_mean(name, names),
           " (expected kind, pgnn, objective, data, train, output, plugins)");
  }
  if (recipe.has_section("plugins")) recipe.settings("plugins");
  StructurePretrainingSettings s;
  std::tie(s.pgnn, s.pgnn_options) = pretrain_component<StructureEncoder>(recipe, "pgnn", "structure encoder");
  std::tie(s.objective, s.objective_options) =
      pretrain_component<StructurePretrainingObjective>(recipe, "objective", "pretraining objective");
  const Options data = pretrain_section(recipe, "data", pretrain_data_schema());
  const Options train = pretrain_section(recipe, "train", pretrain_train_schema());
  const Options output = pretrain_section(recipe, "output", pretrain_output_schema());
  s.dataset = data.get_path("dataset");
  s.split = data.get_string("split");
  s.steps = train.get_int("steps");
  s.batch_size = train.get_int("batch_size");
  s.lr = train.get_float("lr");
  s.seed = static_cast<uint64_t>(train.get_int("seed"));
  s.device = parse_device(train.get_string("device"));
  s.checkpoint_every = train.get_int("checkpoint_every");
  if (train.has("init_weights")) s.init_weights = train.get_path("init_weights");
  s.out = output.get_path("weights");
  if (output.has("metrics")) s.metrics = output.get_path("metrics");
  if (output.has("tensorboard")) s.tensorboard = output.get_path("tensorboard");
  return s;
}

}  // namespace sapling::cli
