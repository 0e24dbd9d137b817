// `sapling train-tokenizer RECIPE`: trains a learned structure tokenizer (e.g. vq_structure) on a prepared dataset.
#include "command.hpp"
#include "sapling/error.hpp"
#include "sapling/internal/recipe_catalog.hpp"  // for resolve_recipe_argument
#include "sapling/recipe_kind.hpp"
#include "sapling/internal/tokenizer_training.hpp"
#include "tokenizer_recipe.hpp"

namespace sapling::cli::train_tokenizer_command {  // one namespace per command: the CLI is a unity build

namespace {

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()
      ("recipe", po::value<std::string>(), "tokenizer recipe (TOML file, or a shipped name such as tokenizers/vq512)")
      ("set", po::value<std::vector<std::string>>(), "override a recipe value: table.key=value (repeatable)")
      ("resume", po::bool_switch(), "continue the run that a checkpoint next to [output] weights holds (WEIGHTS.checkpoint/)")
      ("time-limit", po::value<double>(), "stop after the epoch that passes this many seconds (checkpoint written)")
      ("plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::positional_options_description positional;
  positional.add("recipe", 1);
  po::variables_map vm;
  if (!parse_args(args, desc, positional, vm,
                  "usage: sapling train-tokenizer RECIPE [--set table.key=value]... [--time-limit SECONDS] [--resume]\n\n"
                  "Trains the [tokenizer] of RECIPE (kind = \"train-tokenizer\"; a learned one, e.g. vq_structure) on\n"
                  "[data] dataset and writes [output] weights after every epoch; Ctrl-C or the time limit leaves a\n"
                  "checkpoint that --resume continues. See recipes/tokenizers/ and docs/plugins/vq_structure.md."))
    return 0;
  apply_common_options(vm);
  if (!vm.count("recipe")) fail("train-tokenizer: expected a RECIPE (see --help)");
  const std::vector<std::string> overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const Recipe recipe = Recipe::load(resolve_recipe_argument(vm["recipe"].as<std::string>()), overrides);
  std::vector<std::string> plugin_dirs = vm.count("plugin-path") ? vm["plugin-path"].as<std::vector<std::string>>()
                                                                : std::vector<std::string>{};
  require_recipe_kind(recipe, RecipeKind::TrainTokenizer);
  for (const auto& dir : recipe.plugin_paths()) plugin_dirs.push_back(dir.string());
  load_plugins(plugin_dirs);
  TokenizerTrainingSettings settings = read_tokenizer_recipe(recipe);
  settings.time_limit = vm.count("time-limit") ? vm["time-limit"].as<double>() : 0.0;
  settings.resume = vm["resume"].as<bool>();
  const TokenizerTrainingSummary summary = train_tokenizer(settings);
  return summary.interrupted ? 130 : 0;  // 128 + SIGINT, as a shell reports a command that Ctrl-C ended
}

Register reg("train-tokenizer", "train a learned structure tokenizer (vq_structure) from a tokenizer recipe; resumable", run);

}  // namespace

}  // namespace sapling::cli::train_tokenizer_command
