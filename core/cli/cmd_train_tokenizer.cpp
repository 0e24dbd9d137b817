// `sapling train-tokenizer RECIPE`: trains a learned structure tokenizer (e.g. vq_structure) on a prepared dataset.
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "sapling/internal/recipe_catalog.hpp"  // for resolve_recipe_argument
#include "sapling/internal/tensorboard.hpp"
#include "sapling/internal/toml_location.hpp"
#include "tokenizer_recipe.hpp"

namespace sapling::cli::train_tokenizer_command {  // one namespace per command: the CLI is a unity build

namespace {

namespace fs = std::filesystem;

std::vector<size_t> split_indices(const StructureDataset& dataset, const std::string& split) {
  if (split != "all") return dataset.indices(split);
  std::vector<size_t> all(dataset.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return all;
}

// Chains of `split` with at least 2 residues with a CA (the rest can hold no backbone environment).
std::vector<ChainStructure> load_chains(const StructureDataset& dataset, const std::string& split) {
  std::vector<ChainStructure> chains;
  for (size_t i : split_indices(dataset, split))
    if (dataset.metadata(i).observed >= 2) chains.push_back(dataset.chain(i));
  return chains;
}

std::string fixed(double value, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << value;
  return os.str();
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()
      ("recipe", po::value<std::string>(), "tokenizer recipe (TOML file, or a shipped name such as tokenizers/vq512)")
      ("set", po::value<std::vector<std::string>>(), "override a recipe value: table.key=value (repeatable)")
      ("time-limit", po::value<double>(), "stop after the epoch that passes this many seconds (weights written)")
      ("plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::positional_options_description positional;
  positional.add("recipe", 1);
  po::variables_map vm;
  if (!parse_args(args, desc, positional, vm,
                  "usage: sapling train-tokenizer RECIPE [--set table.key=value]... [--time-limit SECONDS]\n\n"
                  "Trains the [tokenizer] of RECIPE (a learned one, e.g. vq_structure) on [data] dataset and writes\n"
                  "[output] weights after every epoch; see recipes/tokenizers/ and docs/plugins/vq_structure.md."))
    return 0;
  apply_common_options(vm);
  if (!vm.count("recipe")) fail("train-tokenizer: expected a RECIPE (see --help)");
  const std::vector<std::string> overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const Recipe recipe = Recipe::load(resolve_recipe_argument(vm["recipe"].as<std::string>()), overrides);
  std::vector<std::string> plugin_dirs = vm.count("plugin-path") ? vm["plugin-path"].as<std::vector<std::string>>()
                                                                : std::vector<std::string>{};
  if (!is_tokenizer_recipe(recipe))
    fail(recipe.path().string(), ": not a tokenizer recipe (it has no [tokenizer] table); `sapling train` trains models");
  for (const auto& dir : recipe.plugin_paths()) plugin_dirs.push_back(dir.string());
  load_plugins(plugin_dirs);
  const TokenizerRecipe r = read_tokenizer_recipe(recipe);

  const std::string component_where = toml_location(recipe.table()["tokenizer"][kComponentKey].node()->source());
  const auto tokenizer = StructureTokenizerRegistry::instance().find(r.component).factory(r.tokenizer);
  TrainableTokenizer* trainable = tokenizer->trainable();
  if (!trainable)
    fail(component_where, ": [tokenizer] component '", r.component,
         "' is a fixed tokenizer (nothing to train); train-tokenizer trains learned ones such as vq_structure");

  const fs::path dataset_dir = r.data.get_path("dataset");
  if (!fs::exists(dataset_dir / "index.json"))
    fail(r.data.origin("dataset"), ": [data] dataset '", dataset_dir.string(),
         "' is not a prepared dataset; create it with `sapling prepare STRUCTURES... --out ", dataset_dir.string(), "`");
  const StructureDataset dataset(dataset_dir);
  const std::string split = r.data.get_string("split");
  const std::vector<ChainStructure> train_chains = load_chains(dataset, split);
  if (train_chains.empty())
    fail(r.data.origin("split"), ": [data] split '", split, "' of ", dataset_dir.string(), " has no chain with 2 or more residues");
  std::vector<ChainStructure> valid_chains = load_chains(dataset, r.data.get_string("valid_split"));
  const bool valid_is_train = valid_chains.empty();
  if (valid_is_train) valid_chains = train_chains;

  const int64_t epochs = r.train.get_int("epochs");
  const int64_t batch_chains = r.train.get_int("batch_chains");
  const double lr = r.train.get_float("lr");
  const uint64_t seed = static_cast<uint64_t>(r.train.get_int("seed"));
  const fs::path weights = r.output.get_path("weights");
  ensure_writable_dir(weights.has_parent_path() ? weights.parent_path() : fs::path("."));
  std::unique_ptr<std::ofstream> metrics;
  if (r.output.has("metrics")) {
    const fs::path file = r.output.get_path("metrics");
    if (file.has_parent_path()) ensure_writable_dir(file.parent_path());
    metrics = std::make_unique<std::ofstream>(file);
    if (!*metrics) fail(file.string(), ": cannot open for writing");
  }
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (r.output.has("tensorboard")) tensorboard = std::make_unique<TensorBoardWriter>(r.output.get_path("tensorboard"));

  // The seed drives the chain order and every random draw of the tokenizer's training (codebook starts and
  // restarts); the tokenizer's own `seed` option fixes its initial weights.
  at::Generator generator = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> parameters = trainable->parameters();
  int64_t num_parameters = 0;
  for (const auto& p : parameters) num_parameters += p.numel();
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(lr));
  std::cout << "train-tokenizer: " << r.component << " (" << tokenizer->num_states() << " states, " << num_parameters
            << " parameters) on " << train_chains.size() << " chains of " << dataset_dir.string() << " (split " << split
            << "), evaluated on " << valid_chains.size() << (valid_is_train ? " training chains (no valid split)" : " valid chains")
            << "; " << epochs << " epochs of batches of " << batch_chains << " chains, Adam lr " << lr << ", seed " << seed
            << std::endl;

  const double time_limit = vm.count("time-limit") ? vm["time-limit"].as<double>() : 0.0;
  const auto start = std::chrono::steady_clock::now();
  int64_t epoch = 1;
  for (; epoch <= epochs; ++epoch) {
    trainable->set_training(true);
    const torch::Tensor order = torch::randperm(static_cast<int64_t>(train_chains.size()), generator, torch::kInt64);
    const int64_t* index = order.data_ptr<int64_t>();
    // Batch means of every stat the tokenizer reports, except counts ("restarted", "residues"), which add up.
    std::map<std::string, double> totals;
    double loss_total = 0;
    int64_t batches = 0;
    for (int64_t first = 0; first < order.numel(); first += batch_chains) {
      std::vector<ChainStructure> batch;
      for (int64_t k = first; k < std::min(order.numel(), first + batch_chains); ++k)
        batch.push_back(train_chains[static_cast<size_t>(index[k])]);
      std::map<std::string, double> stats;
      optimizer.zero_grad();
      const torch::Tensor loss = trainable->loss(batch, generator, stats);
      const double value = loss.item<double>();
      if (!std::isfinite(value)) fail("train-tokenizer: loss is ", value, " in epoch ", epoch, "; stopping (lower train.lr?)");
      loss.backward();
      optimizer.step();
      loss_total += value;
      for (const auto& [name, v] : stats) totals[name] += v;
      ++batches;
    }
    trainable->set_training(false);
    const std::map<std::string, double> quality = trainable->evaluate(valid_chains);
    trainable->save_weights(weights);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    nlohmann::json record{{"epoch", epoch}, {"train_loss", loss_total / batches}, {"seconds", seconds}};
    std::ostringstream line;
    line << "epoch " << epoch << "/" << epochs << "  loss " << fixed(loss_total / batches, 4);
    for (const auto& [name, total] : totals) {
      const bool count = name == "restarted" || name == "residues";
      const double v = count ? total : total / batches;
      record["train_" + name] = v;
      if (name != "residues") line << "  " << name << " " << (count ? fixed(v, 0) : fixed(v, 4));
    }
    for (const auto& [name, v] : quality) {
      record["valid_" + name] = v;
      if (name != "residues") line << "  valid " << name << " " << fixed(v, 4);
    }
    line << "  " << fixed(seconds, 1) << " s";
    std::cout << line.str() << std::endl;
    if (metrics) {
      *metrics << record.dump() << "\n";
      metrics->flush();
    }
    if (tensorboard)  // "train_loss" -> "train/loss", "valid_x" -> "valid/x", "seconds" -> "time/seconds"
      for (const auto& [key, value] : record.items()) {
        if (key == "epoch") continue;
        const auto cut = key.find('_');
        const bool split = cut != std::string::npos && (key.rfind("train_", 0) == 0 || key.rfind("valid_", 0) == 0);
        tensorboard->add_scalar(split ? key.substr(0, cut) + "/" + key.substr(cut + 1) : "time/" + key,
                                value.get<double>(), epoch);
      }
    if (time_limit > 0 && seconds >= time_limit && epoch < epochs) {
      std::cout << "time limit of " << time_limit << " s reached" << std::endl;
      break;
    }
  }
  std::cout << "wrote " << weights.string() << " after " << std::min(epoch, epochs) << " epochs" << std::endl;
  return 0;
}

Register reg("train-tokenizer", "train a learned structure tokenizer (vq_structure) from a tokenizer recipe", run);

}  // namespace

}  // namespace sapling::cli::train_tokenizer_command
