// `sapling pretrain-pgnn`: self-supervised pretraining of a structure encoder on a prepared dataset (Adam, JSONL metrics).
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "command.hpp"
#include "component_options.hpp"
#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/log.hpp"
#include "sapling/pretraining.hpp"
#include "sapling/registry.hpp"
#include "sapling/internal/tensorboard.hpp"

namespace sapling::cli::pretrain_pgnn_command {  // one namespace per command: the CLI is a unity build
namespace {

namespace fs = std::filesystem;

std::vector<std::string> strings(const po::variables_map& vm, const char* key) {
  return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()
      ("dataset", po::value<std::string>(), "structure dataset folder (sapling prepare)")
      ("out", po::value<std::string>(), "encoder weights file (.safetensors), rewritten atomically at each checkpoint")
      ("steps", po::value<int64_t>()->default_value(1000), "optimiser steps")
      ("batch-size", po::value<int64_t>()->default_value(8), "chains per step (the contrastive negatives)")
      ("lr", po::value<double>()->default_value(1e-3), "Adam learning rate")
      ("seed", po::value<uint64_t>()->default_value(0), "seed of the initialisation, chain order, crops and masks")
      ("metrics", po::value<std::string>(), "JSON-lines file: one {step, loss, seconds, ...} per step")
      ("tensorboard", po::value<std::string>(), "folder for TensorBoard event files (train/loss per step)")
      ("split", po::value<std::string>()->default_value("train"), "dataset split to train on (train, valid, all)")
      ("encoder", po::value<std::string>(), "structure encoder (plugin; default: the plugins' default pGNN, gearnet)")
      ("objective", po::value<std::string>(), "pretraining objective (default: the plugins' default, gearnet_multiview_contrast)")
      ("pgnn-option", po::value<std::vector<std::string>>(), "encoder option key=value (repeatable, e.g. hidden_dims=[128,128])")
      ("objective-option", po::value<std::vector<std::string>>(), "objective option key=value (repeatable)")
      ("init-weights", po::value<std::string>(), "start from these encoder weights instead of a random initialisation")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu or cuda[:N]: where the encoder and the objective run (graphs are built on the CPU)")
      ("checkpoint-every", po::value<int64_t>()->default_value(100), "write --out every N steps (and at the end)")
      ("time-limit", po::value<double>(), "stop after the step that passes this many seconds (checkpoint written)")
      ("plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::variables_map vm;
  if (!parse_args(args, desc, {}, vm,
                  "usage: sapling pretrain-pgnn --dataset DIR --out FILE.safetensors [--steps N] [--batch-size 8]\n"
                  "       [--lr 1e-3] [--seed 0] [--metrics FILE.jsonl] [--tensorboard DIR] [--pgnn-option key=value]...\n"
                  "       [--objective NAME] [--objective-option key=value]... [--time-limit SECONDS]"))
    return 0;
  apply_common_options(vm);
  if (!vm.count("dataset")) fail("pretrain-pgnn: --dataset DIR is required");
  if (!vm.count("out")) fail("pretrain-pgnn: --out FILE.safetensors is required");
  const fs::path out = vm["out"].as<std::string>();
  const int64_t steps = vm["steps"].as<int64_t>();
  const int64_t batch_size = vm["batch-size"].as<int64_t>();
  const double lr = vm["lr"].as<double>();
  const uint64_t seed = vm["seed"].as<uint64_t>();
  const int64_t checkpoint_every = vm["checkpoint-every"].as<int64_t>();
  if (steps < 1) fail("--steps must be >= 1, got ", steps);
  if (batch_size < 2) fail("--batch-size must be >= 2 (contrastive negatives come from the batch), got ", batch_size);
  if (!(lr > 0)) fail("--lr must be > 0, got ", lr);
  if (checkpoint_every < 1) fail("--checkpoint-every must be >= 1, got ", checkpoint_every);
  if (out.has_parent_path()) ensure_writable_dir(out.parent_path());

  const StructureDataset dataset(vm["dataset"].as<std::string>());
  const std::string split = vm["split"].as<std::string>();
  std::vector<size_t> pool;
  const std::vector<size_t> candidates = [&] {
    if (split != "all") return dataset.indices(split);
    std::vector<size_t> all(dataset.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    return all;
  }();
  // Batch norm and crops need at least 2 residues with a CA per chain.
  for (size_t i : candidates)
    if (dataset.metadata(i).observed >= 2) pool.push_back(i);
  if (static_cast<int64_t>(pool.size()) < batch_size)
    fail(dataset.path().string(), ": split '", split, "' has ", pool.size(), " usable chains (>= 2 observed residues), fewer than --batch-size ",
         batch_size);

  load_plugins(strings(vm, "plugin-path"));
  const std::string encoder_name = vm.count("encoder") ? vm["encoder"].as<std::string>()
                                                      : Registry<StructureEncoder>::instance().default_name("--encoder NAME");
  const std::string objective_name =
      vm.count("objective") ? vm["objective"].as<std::string>()
                            : Registry<StructurePretrainingObjective>::instance().default_name("--objective NAME");
  const auto& encoder_reg = Registry<StructureEncoder>::instance().find(encoder_name);
  const auto& objective_reg = Registry<StructurePretrainingObjective>::instance().find(objective_name);

  // One seed drives the initialisation (global torch RNG) and, through
  // `generator`, the chain order and every crop and mask.
  torch::manual_seed(seed);
  at::Generator generator = at::detail::createCPUGenerator(seed);
  std::shared_ptr<StructureEncoder> encoder = encoder_reg.factory(
      options_from_pairs(encoder_reg.schema, strings(vm, "pgnn-option"), "--pgnn-option", "pgnn"));
  if (vm.count("init-weights")) encoder->load_weights(vm["init-weights"].as<std::string>());
  const auto device = parse_device(vm["device"].as<std::string>());
  if (device.is_cuda() && !torch::cuda::is_available())
    fail("--device ", vm["device"].as<std::string>(), ": CUDA is not available in this build or machine");
  // Before attach(): the objective puts its own head on the encoder's device.
  encoder->to(device);
  std::shared_ptr<StructurePretrainingObjective> objective = objective_reg.factory(
      options_from_pairs(objective_reg.schema, strings(vm, "objective-option"), "--objective-option", "objective"));
  objective->attach(encoder);
  encoder->train();
  objective->train();

  std::vector<torch::Tensor> parameters = encoder->parameters();
  for (const auto& p : objective->parameters()) parameters.push_back(p);
  int64_t num_encoder_parameters = 0;
  for (const auto& p : encoder->parameters()) num_encoder_parameters += p.numel();
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(lr));

  std::unique_ptr<std::ofstream> metrics;
  if (vm.count("metrics")) {
    metrics = std::make_unique<std::ofstream>(vm["metrics"].as<std::string>());
    if (!*metrics) fail(vm["metrics"].as<std::string>(), ": cannot open for writing");
  }
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (vm.count("tensorboard")) tensorboard = std::make_unique<TensorBoardWriter>(vm["tensorboard"].as<std::string>());
  std::cout << "pretrain-pgnn: " << encoder_name << " (" << num_encoder_parameters << " parameters, output dim "
            << encoder->output_dim() << ") with " << objective_name << " on " << pool.size() << " chains of "
            << dataset.path().string() << " (split " << split << "), batch " << batch_size << ", " << steps
            << " steps, Adam lr " << lr << ", seed " << seed << ", on " << device.str() << std::endl;

  const double time_limit = vm.count("time-limit") ? vm["time-limit"].as<double>() : 0.0;
  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> order;
  size_t cursor = 0;
  int64_t step = 0;
  double running = 0;
  for (step = 1; step <= steps; ++step) {
    std::vector<ChainStructure> batch;
    while (static_cast<int64_t>(batch.size()) < batch_size) {
      if (cursor == order.size()) {  // new epoch: reshuffle
        const torch::Tensor perm = torch::randperm(static_cast<int64_t>(pool.size()), generator, torch::kInt64);
        order.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + perm.numel());
        cursor = 0;
      }
      batch.push_back(dataset.chain(pool[order[cursor++]]));
    }
    optimizer.zero_grad();
    const torch::Tensor loss = objective->loss(batch, generator);
    const double value = loss.item<double>();
    if (!std::isfinite(value)) fail("pretrain-pgnn: loss is ", value, " at step ", step, "; stopping (lower --lr?)");
    loss.backward();
    optimizer.step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    running = step == 1 ? value : 0.9 * running + 0.1 * value;
    if (metrics) {
      *metrics << nlohmann::json{{"step", step}, {"loss", value}, {"seconds", seconds}}.dump() << "\n";
      metrics->flush();
    }
    if (tensorboard) tensorboard->add_scalar("train/loss", value, step);
    const bool last = step == steps || (time_limit > 0 && seconds >= time_limit);
    if (step % 10 == 0 || step == 1 || last)
      std::cout << "step " << step << "  loss " << std::fixed << std::setprecision(4) << value << "  (avg "
                << running << ")  " << std::setprecision(1) << seconds << " s" << std::defaultfloat << std::endl;
    if (step % checkpoint_every == 0 || last) encoder->save_weights(out);
    if (last) break;
  }
  std::cout << "wrote " << out.string() << " after " << std::min(step, steps) << " steps" << std::endl;
  return 0;
}

Register reg("pretrain-pgnn", "self-supervised pretraining of a structure encoder (GearNet multiview contrast)", run);

}  // namespace
}  // namespace sapling::cli::pretrain_pgnn_command
