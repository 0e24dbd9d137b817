// pretrain_structure_encoder(): steps of a pretraining objective over a structure encoder, on the loop kit.
#include "sapling/internal/structure_pretraining.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <iomanip>
#include <iostream>

#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/pretraining.hpp"
#include "sapling/internal/training_loop.hpp"

namespace sapling {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Chains of `split` ("all": every chain) that batch norm and crops can use: 2 or more residues with a CA.
std::vector<size_t> pretraining_pool(const StructureDataset& dataset, const std::string& split) {
  std::vector<size_t> candidates;
  if (split != "all") {
    candidates = dataset.indices(split);
  } else {
    for (size_t i = 0; i < dataset.size(); ++i) candidates.push_back(i);
  }
  std::vector<size_t> pool;
  for (size_t i : candidates)
    if (dataset.metadata(i).observed >= 2) pool.push_back(i);
  return pool;
}

// Only the loss reaches TensorBoard, as train/loss at the record's step.
MetricScalars pretraining_scalars(const json& record) {
  return MetricScalars{record.value("step", int64_t{0}), {{"train/loss", record.at("loss").get<double>()}}};
}

}  // namespace

StructurePretrainingSummary pretrain_structure_encoder(const StructurePretrainingSettings& s) {
  if (s.steps < 1) fail("--steps must be >= 1, got ", s.steps);
  if (s.batch_size < 2) fail("--batch-size must be >= 2 (contrastive negatives come from the batch), got ", s.batch_size);
  if (!(s.lr > 0)) fail("--lr must be > 0, got ", s.lr);
  if (s.checkpoint_every < 1) fail("--checkpoint-every must be >= 1, got ", s.checkpoint_every);
  if (s.out.has_parent_path()) ensure_writable_dir(s.out.parent_path());

  const StructureDataset dataset(s.dataset);
  const std::vector<size_t> pool = pretraining_pool(dataset, s.split);
  if (static_cast<int64_t>(pool.size()) < s.batch_size)
    fail(dataset.path().string(), ": split '", s.split, "' has ", pool.size(),
         " usable chains (>= 2 observed residues), fewer than --batch-size ", s.batch_size);

  const auto& encoder_reg = Registry<StructureEncoder>::instance().find(s.pgnn);
  const auto& objective_reg = Registry<StructurePretrainingObjective>::instance().find(s.objective);
  // One seed drives the initialisation (global torch RNG) and, through `generator`, the chain order and every
  // crop and mask.
  torch::manual_seed(s.seed);
  at::Generator generator = at::detail::createCPUGenerator(s.seed);
  std::shared_ptr<StructureEncoder> encoder = encoder_reg.factory(s.pgnn_options);
  if (!s.init_weights.empty()) encoder->load_weights(s.init_weights);
  if (s.device.is_cuda() && !torch::cuda::is_available())
    fail("--device ", s.device.str(), ": CUDA is not available in this build or machine");
  // Before attach(): the objective puts its own head on the encoder's device.
  encoder->to(s.device);
  std::shared_ptr<StructurePretrainingObjective> objective = objective_reg.factory(s.objective_options);
  objective->attach(encoder);
  encoder->train();
  objective->train();

  std::vector<torch::Tensor> parameters = encoder->parameters();
  for (const auto& p : objective->parameters()) parameters.push_back(p);
  int64_t num_encoder_parameters = 0;
  for (const auto& p : encoder->parameters()) num_encoder_parameters += p.numel();
  const std::unique_ptr<AdamW> optimizer = make_adam(parameters, s.lr);
  MetricsLog metrics(s.metrics, 0, true, s.tensorboard, 0, pretraining_scalars);
  std::cout << "pretrain-pgnn: " << s.pgnn << " (" << num_encoder_parameters << " parameters, output dim "
            << encoder->output_dim() << ") with " << s.objective << " on " << pool.size() << " chains of "
            << dataset.path().string() << " (split " << s.split << "), batch " << s.batch_size << ", " << s.steps
            << " steps, Adam lr " << s.lr << ", seed " << s.seed << ", on " << s.device.str() << std::endl;

  const StopRequest stop(s.time_limit);
  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> order;
  size_t cursor = 0;
  StructurePretrainingSummary summary;
  double running = 0;
  for (int64_t step = 1; step <= s.steps; ++step) {
    std::vector<ChainStructure> batch;
    while (static_cast<int64_t>(batch.size()) < s.batch_size) {
      if (cursor == order.size()) {  // new epoch: reshuffle
        const torch::Tensor perm = torch::randperm(static_cast<int64_t>(pool.size()), generator, torch::kInt64);
        order.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + perm.numel());
        cursor = 0;
      }
      batch.push_back(dataset.chain(pool[static_cast<size_t>(order[cursor++])]));
    }
    optimizer->zero_grad();
    const torch::Tensor loss = objective->loss(batch, generator);
    const double value = loss.item<double>();
    check_finite_loss(value, "pretrain-pgnn", "at step " + std::to_string(step), "lower --lr?");
    loss.backward();
    optimizer->step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    running = step == 1 ? value : 0.9 * running + 0.1 * value;
    metrics.write(json{{"step", step}, {"loss", value}, {"seconds", seconds}});
    summary.steps = step;
    summary.interrupted = stop.interrupted();
    const bool last = step == s.steps || stop.time_up(seconds) || summary.interrupted;
    if (step % 10 == 0 || step == 1 || last)
      std::cout << "step " << step << "  loss " << std::fixed << std::setprecision(4) << value << "  (avg "
                << running << ")  " << std::setprecision(1) << seconds << " s" << std::defaultfloat << std::endl;
    if (step % s.checkpoint_every == 0 || last) encoder->save_weights(s.out);
    if (last) break;
  }
  if (summary.interrupted) std::cout << "interrupted at step " << summary.steps << std::endl;
  std::cout << "wrote " << s.out.string() << " after " << summary.steps << " steps" << std::endl;
  return summary;
}

}  // namespace sapling
