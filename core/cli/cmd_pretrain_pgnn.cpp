// `sapling pretrain-pgnn`: self-supervised pretraining of a structure encoder, from flags or a recipe (kind = "pretrain-pgnn").
#include <iomanip>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "component_options.hpp"
#include "pretrain_recipe.hpp"
#include "sapling/deprecation.hpp"
#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/log.hpp"
#include "sapling/pretraining.hpp"
#include "sapling/internal/recipe_catalog.hpp"  // for resolve_recipe_argument
#include "sapling/registry.hpp"
#include "sapling/internal/structure_pretraining.hpp"

namespace sapling::cli::pretrain_pgnn_command {  // one namespace per command: the CLI is a unity build
namespace {

namespace fs = std::filesystem;

std::vector<std::string> strings(const po::variables_map& vm, const char* key) {
  return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// --pgnn, or its old name --encoder (sapling 0.2 only, with a warning naming --pgnn).
std::string pgnn_flag(const po::variables_map& vm) {
  if (vm.count("encoder") && vm.count("pgnn")) fail("pretrain-pgnn: --encoder is the old name of --pgnn; give only --pgnn");
  if (vm.count("encoder")) {
    warn_renamed("pretrain-pgnn --encoder", "--pgnn", "the structure encoder's flag in every command");
    return vm["encoder"].as<std::string>();
  }
  return vm.count("pgnn") ? vm["pgnn"].as<std::string>() : "";
}

// The components' options without a recipe: --set pgnn.key=value and --set objective.key=value as in every
// command; --pgnn-option and --objective-option are their old names (sapling 0.2 only).
const std::vector<ComponentTable> kTables = {{"pgnn", {"--pgnn-option"}}, {"objective", {"--objective-option"}}};

// The flags given on the command line as recipe overrides (flag -> table.key), so that they win over the file.
std::vector<std::string> flag_overrides(const po::variables_map& vm) {
  std::vector<std::string> out = strings(vm, "set");
  const std::vector<std::pair<const char*, const char*>> keys = {
      {"dataset", "data.dataset"},   {"split", "data.split"},         {"out", "output.weights"},
      {"metrics", "output.metrics"}, {"tensorboard", "output.tensorboard"}, {"device", "train.device"},
      {"init-weights", "train.init_weights"}, {"objective", "objective.component"}};
  for (const auto& [flag, key] : keys)
    if (vm.count(flag) && !vm[flag].defaulted()) out.push_back(std::string(key) + "=" + vm[flag].as<std::string>());
  auto number = [&](const char* flag, const char* key, auto type) {
    if (vm.count(flag) && !vm[flag].defaulted())
      out.push_back(std::string(key) + "=" + std::to_string(vm[flag].as<decltype(type)>()));
  };
  number("steps", "train.steps", int64_t{});
  number("batch-size", "train.batch_size", int64_t{});
  number("seed", "train.seed", uint64_t{});
  number("checkpoint-every", "train.checkpoint_every", int64_t{});
  if (vm.count("lr") && !vm["lr"].defaulted()) {
    std::ostringstream lr;
    lr << std::setprecision(17) << vm["lr"].as<double>();
    const std::string text = lr.str();
    out.push_back("train.lr=" + text + (text.find_first_of(".eE") == std::string::npos ? ".0" : ""));
  }
  const std::string pgnn = pgnn_flag(vm);
  if (!pgnn.empty()) out.push_back("pgnn.component=" + pgnn);
  // With a recipe, --set reaches any table (added above); only the old flags need their table's prefix.
  for (const auto& component : kTables)
    for (const auto& pair : renamed_flag_pairs(vm, component)) out.push_back(component.table + "." + pair);
  return out;
}

StructurePretrainingSettings settings_from_flags(const po::variables_map& vm) {
  if (!vm.count("dataset")) fail("pretrain-pgnn: --dataset DIR is required (or --recipe FILE)");
  if (!vm.count("out")) fail("pretrain-pgnn: --out FILE.safetensors is required (or --recipe FILE)");
  StructurePretrainingSettings s;
  s.dataset = vm["dataset"].as<std::string>();
  s.split = vm["split"].as<std::string>();
  s.out = vm["out"].as<std::string>();
  if (vm.count("metrics")) s.metrics = vm["metrics"].as<std::string>();
  if (vm.count("tensorboard")) s.tensorboard = vm["tensorboard"].as<std::string>();
  if (vm.count("init-weights")) s.init_weights = vm["init-weights"].as<std::string>();
  s.steps = vm["steps"].as<int64_t>();
  s.batch_size = vm["batch-size"].as<int64_t>();
  s.lr = vm["lr"].as<double>();
  s.seed = vm["seed"].as<uint64_t>();
  s.checkpoint_every = vm["checkpoint-every"].as<int64_t>();
  s.device = parse_device(vm["device"].as<std::string>());
  const std::string pgnn = pgnn_flag(vm);
  s.pgnn = !pgnn.empty() ? pgnn : Registry<StructureEncoder>::instance().default_name("--pgnn NAME");
  s.objective = vm.count("objective") ? vm["objective"].as<std::string>()
                                      : Registry<StructurePretrainingObjective>::instance().default_name("--objective NAME");
  s.pgnn_options = options_from_pairs(Registry<StructureEncoder>::instance().find(s.pgnn).schema,
                                      component_pairs(vm, "pgnn", kTables), "--set pgnn.key=value", "pgnn");
  s.objective_options = options_from_pairs(Registry<StructurePretrainingObjective>::instance().find(s.objective).schema,
                                           component_pairs(vm, "objective", kTables), "--set objective.key=value",
                                           "objective");
  return s;
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()
      ("recipe", po::value<std::string>(), "pretrain-pgnn recipe (kind = \"pretrain-pgnn\"); the flags below override its values")
      ("set", po::value<std::vector<std::string>>(), "TABLE.key=value (repeatable): pgnn.key / objective.key set the components' options (e.g. "
       "pgnn.hidden_dims=[128,128]); with --recipe, any recipe value")
      ("dataset", po::value<std::string>(), "structure dataset folder (sapling prepare)")
      ("out", po::value<std::string>(), "encoder weights file (.safetensors), rewritten atomically at each checkpoint")
      ("steps", po::value<int64_t>()->default_value(1000), "optimiser steps")
      ("batch-size", po::value<int64_t>()->default_value(8), "chains per step (the contrastive negatives)")
      ("lr", po::value<double>()->default_value(1e-3), "Adam learning rate")
      ("seed", po::value<uint64_t>()->default_value(0), "seed of the initialisation, chain order, crops and masks")
      ("metrics", po::value<std::string>(), "JSON-lines file: one {step, loss, seconds, ...} per step")
      ("tensorboard", po::value<std::string>(), "folder for TensorBoard event files (train/loss per step)")
      ("split", po::value<std::string>()->default_value("train"), "dataset split to train on (train, valid, all)")
      ("pgnn", po::value<std::string>(), "structure encoder (plugin; default: the plugins' default pGNN, gearnet)")
      ("encoder", po::value<std::string>(), "old name of --pgnn (sapling 0.2 only)")
      ("objective", po::value<std::string>(), "pretraining objective (default: the plugins' default, gearnet_multiview_contrast)")
      ("pgnn-option", po::value<std::vector<std::string>>(), "old name of --set pgnn.key=value (sapling 0.2 only)")
      ("objective-option", po::value<std::vector<std::string>>(), "old name of --set objective.key=value (sapling 0.2 only)")
      ("init-weights", po::value<std::string>(), "start from these encoder weights instead of a random initialisation")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu or cuda[:N]: where the encoder and the objective run (graphs are built on the CPU)")
      ("checkpoint-every", po::value<int64_t>()->default_value(100), "write --out every N steps (and at the end)")
      ("time-limit", po::value<double>(), "stop after the step that passes this many seconds (checkpoint written)")
      ("plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::variables_map vm;
  if (!parse_args(args, desc, {}, vm,
                  "usage: sapling pretrain-pgnn --dataset DIR --out FILE.safetensors [--steps N] [--batch-size 8]\n"
                  "       [--lr 1e-3] [--seed 0] [--metrics FILE.jsonl] [--tensorboard DIR] [--pgnn NAME]\n"
                  "       [--set pgnn.key=value]... [--objective NAME] [--set objective.key=value]...\n"
                  "       [--time-limit SECONDS]\n"
                  "   or: sapling pretrain-pgnn --recipe FILE [--set table.key=value]... [any flag above]\n\n"
                  "A recipe (kind = \"pretrain-pgnn\") has [pgnn], [objective], [data], [train] and [output] tables;\n"
                  "see docs/pgnn_pretraining.md. Ctrl-C or the time limit writes the weights before stopping."))
    return 0;
  apply_common_options(vm);
  std::vector<std::string> plugin_dirs = strings(vm, "plugin-path");
  StructurePretrainingSettings settings;
  if (vm.count("recipe")) {
    const Recipe recipe = Recipe::load(resolve_recipe_argument(vm["recipe"].as<std::string>()), flag_overrides(vm));
    for (const auto& dir : recipe.plugin_paths()) plugin_dirs.push_back(dir.string());
    load_plugins(plugin_dirs);
    settings = read_pretrain_recipe(recipe);
  } else {
    load_plugins(plugin_dirs);
    settings = settings_from_flags(vm);
  }
  settings.time_limit = vm.count("time-limit") ? vm["time-limit"].as<double>() : 0.0;
  const StructurePretrainingSummary summary = pretrain_structure_encoder(settings);
  return summary.interrupted ? 130 : 0;  // 128 + SIGINT, as a shell reports a command that Ctrl-C ended
}

Register reg("pretrain-pgnn", "self-supervised pretraining of a structure encoder (GearNet multiview contrast)", run);

}  // namespace
}  // namespace sapling::cli::pretrain_pgnn_command
