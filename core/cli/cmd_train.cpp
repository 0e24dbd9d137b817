// `sapling train RECIPE`: structure-alignment (or MLM) training from a recipe, resumable, data-parallel via torchrun-style env.
#include <iomanip>
#include <iostream>

#include "command.hpp"
#include "sapling/error.hpp"
#include "sapling/log.hpp"
#include "sapling/recipe.hpp"
#include "sapling/internal/recipe_catalog.hpp"
#include "sapling/internal/training.hpp"

namespace sapling::cli::train_command {  // one namespace per command: the CLI is a unity build
namespace {

void print_summary(const TrainSummary& s) {
  std::cout << "\ntrained " << s.steps << " steps";
  if (s.resumed_from > 0) std::cout << " (resumed at step " << s.resumed_from << ")";
  if (s.stopped_early) std::cout << ", stopped early";
  std::cout << " in " << std::fixed << std::setprecision(1) << s.seconds << " s, "
            << std::setprecision(0) << s.residues_per_second << " residues/s\n";
  if (!s.valid_after.empty()) {
    std::cout << "validation (mean per micro-batch)  before      after\n";
    for (const auto& [name, after] : s.valid_after) {
      std::cout << "  " << std::left << std::setw(32) << name << std::right << std::setprecision(4);
      const auto it = s.valid_before.find(name);
      if (it != s.valid_before.end()) std::cout << std::setw(10) << it->second;
      else std::cout << std::setw(10) << "-";
      std::cout << " " << std::setw(10) << after << "\n";
    }
  }
  std::cout << "outputs in " << s.out.string() << ":\n"
            << "  final/          the trained pLM in its family's HF layout + heads.safetensors\n";
  if (!s.best.empty()) std::cout << "  best/           the same, at the best validation loss\n";
  std::cout << "  metrics.jsonl   one JSON line per step (losses, kept fractions, lr, grad norm, residues/s) and validation\n"
            << "  tensorboard/    the same numbers as TensorBoard scalars: tensorboard --logdir " << s.out.string() << "\n"
            << "  checkpoints/    resumable state: sapling train RECIPE --out " << s.out.string() << " --resume\n";
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("recipe", po::value<std::string>(), "the recipe: a TOML file, or a shipped recipe's name (`sapling recipe list`)")(
      "set", po::value<std::vector<std::string>>(), "override: table.key=value (repeatable)")(
      "out", po::value<std::string>()->default_value(""), "run folder (default: [train] output, else runs/<recipe name>)")(
      "resume", po::bool_switch(), "continue from the run folder's latest checkpoint (a fresh start if it has none)")(
      "max-steps", po::value<int64_t>()->default_value(-1), "stop after this many optimiser steps (overrides the recipe)")(
      "inspect-batch", po::value<std::string>(),
      "train nothing: write the first micro-batch's inputs, model outputs, per-residue losses, kept residues and "
      "normalised totals to this safetensors file");
  po::positional_options_description pos;
  pos.add("recipe", 1);
  po::variables_map vm;
  const std::string usage =
      "usage: sapling train RECIPE [--set table.key=value]... [--out DIR] [--resume] [--max-steps N]\n"
      "       sapling train RECIPE --inspect-batch FILE.safetensors\n\n"
      "Trains [model] with the [losses.*] tables on [data] dataset (see `sapling recipe show RECIPE`).\n"
      "Data parallel: launch one process per worker with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT\n"
      "(and LOCAL_RANK) set, as torchrun or srun do; rank 0 writes the outputs.";
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);
  if (!vm.count("recipe")) fail("expected a recipe\n", usage);
  const auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  // A file, or the name of a shipped recipe (`sapling recipe list`).
  Recipe recipe = Recipe::load(resolve_recipe_argument(vm["recipe"].as<std::string>()), overrides);
  std::vector<std::string> extra;
  for (const auto& p : recipe.plugin_paths()) extra.push_back(p.string());
  load_plugins(extra);

  if (vm.count("inspect-batch")) {
    inspect_first_batch(recipe, vm["inspect-batch"].as<std::string>());
    return 0;
  }
  TrainRunOptions options;
  options.out = vm["out"].as<std::string>();
  options.resume = vm["resume"].as<bool>();
  options.max_steps = vm["max-steps"].as<int64_t>();
  const auto summary = train(recipe, options);
  const char* rank = std::getenv("RANK");
  if (!rank || std::string(rank) == "0") print_summary(summary);
  return 0;
}

Register reg("train", "train a pLM with structure alignment (or MLM only) from a recipe; resumable", run);

}  // namespace
}  // namespace sapling::cli::train_command
