// Behaviour checks of what trains: trainable tokenizers (StructureTokenizer::trainable()) and structure pretraining
// objectives. A few optimiser steps on the fixture chains lower the loss on fixed views, gradients are finite and
// reach every parameter, saved weights reproduce the outputs, and equal seeds give equal runs.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "checks.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/pretraining.hpp"

namespace sapling::conformance {

namespace trainable_impl {  // named, not anonymous: the unity build compiles these files as one unit

// ----------------------------------------------------------------------------------------------- tokenizers

struct TrainableSetup {
  std::shared_ptr<StructureTokenizer> tokenizer;
  TrainableTokenizer* trainable = nullptr;
};

// A fresh tokenizer (torch seed `seed`); trainable stays null for a fixed tokenizer.
TrainableSetup trainable_tokenizer(const std::string& name, const RunContext& context, uint64_t seed) {
  torch::manual_seed(seed);
  TrainableSetup s;
  s.tokenizer = build_component<StructureTokenizer>(name, context);
  s.trainable = s.tokenizer->trainable();
  return s;
}

// `steps` Adam steps on the fixture chains (generator seeded `seed`); the loss of each step.
std::vector<double> train_tokenizer(Checker& c, TrainableTokenizer& t, const std::vector<ChainStructure>& batch,
                                    int steps, double lr, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  torch::optim::Adam optimizer(t.parameters(), torch::optim::AdamOptions(lr));
  t.set_training(true);
  std::vector<double> curve;
  for (int step = 0; step < steps; ++step) {
    std::map<std::string, double> stats;
    optimizer.zero_grad();
    const torch::Tensor loss = t.loss(batch, generator, stats);
    curve.push_back(loss.item<double>());
    if (!c.expect(std::isfinite(curve.back()), text("step ", step, ": the loss is finite, got ", curve.back()))) break;
    loss.backward();
    optimizer.step();
  }
  t.set_training(false);
  return curve;
}

// The loss on fixed views (generator seed 1234), outside training mode and without gradients.
double fixed_tokenizer_loss(TrainableTokenizer& t, const std::vector<ChainStructure>& batch) {
  torch::NoGradGuard no_grad;
  at::Generator generator = at::detail::createCPUGenerator(1234);
  std::map<std::string, double> stats;
  return t.loss(batch, generator, stats).item<double>();
}

int setting(const RunContext& context, const std::string& kind, const std::string& name, const std::string& key,
            double fallback) {
  return static_cast<int>(context.examples.train_setting(kind, name, key, fallback));
}

void tokenizer_learns(Checker& c, const std::string& name, const RunContext& context) {
  auto s = trainable_tokenizer(name, context, 0);
  if (!s.trainable) return c.skip("not trainable (trainable() is null)");
  const int steps = setting(context, StructureTokenizer::kind, name, "steps", 10);
  const double lr = context.examples.train_setting(StructureTokenizer::kind, name, "lr", 1e-3);
  const auto& batch = context.fixtures.chains;
  train_tokenizer(c, *s.trainable, batch, 1, lr, 0);  // a first step initialises what is learned from data
  const double before = fixed_tokenizer_loss(*s.trainable, batch);
  train_tokenizer(c, *s.trainable, batch, steps, lr, 1);
  const double after = fixed_tokenizer_loss(*s.trainable, batch);
  c.note(text("fixed-batch loss ", before, " -> ", after, " after ", steps, " steps"));
  c.expect(after < before, text(steps, " training steps lower the loss on a fixed batch: ", before, " -> ", after));
}

void tokenizer_gradients(Checker& c, const std::string& name, const RunContext& context) {
  auto s = trainable_tokenizer(name, context, 0);
  if (!s.trainable) return c.skip("not trainable (trainable() is null)");
  const auto parameters = s.trainable->parameters();
  if (!c.expect(!parameters.empty(), "parameters() is not empty")) return;
  at::Generator generator = at::detail::createCPUGenerator(0);
  s.trainable->set_training(true);
  std::map<std::string, double> stats;
  for (auto p : parameters) p.mutable_grad() = torch::Tensor();
  const torch::Tensor loss = s.trainable->loss(context.fixtures.chains, generator, stats);
  s.trainable->set_training(false);
  if (!c.expect(loss.dim() == 0, "the loss is a scalar")) return;
  loss.backward();
  for (const auto& [part, value] : stats) c.expect(std::isfinite(value), "stat " + part + " is finite");
  size_t reached = 0;
  for (size_t k = 0; k < parameters.size(); ++k) {
    const auto& grad = parameters[k].grad();
    if (!c.expect(grad.defined(), text("parameter ", k, " ", parameters[k].sizes(), " gets a gradient"))) continue;
    c.expect(torch::isfinite(grad).all().item<bool>(), text("parameter ", k, ": finite gradient"));
    reached += grad.abs().sum().item<double>() > 0;
  }
  c.expect(reached > 0, "some gradient is non-zero");
}

void tokenizer_weights(Checker& c, const std::string& name, const RunContext& context) {
  auto s = trainable_tokenizer(name, context, 0);
  if (!s.trainable) return c.skip("not trainable (trainable() is null)");
  const auto& entry = StructureTokenizerRegistry::instance().find(name);
  if (!entry.schema.find("weights")) return c.skip("no `weights` option to load saved weights with");
  train_tokenizer(c, *s.trainable, context.fixtures.chains, 1, 1e-3, 0);
  const auto file = context.scratch / "tokenizer.safetensors";
  s.trainable->save_weights(file);
  torch::manual_seed(99);  // other initial weights: only the file can make them equal
  Options options = context.examples.options(StructureTokenizer::kind, name, entry.schema);
  options.set("weights", file.string());
  const auto loaded = entry.factory(options);
  for (const auto& chain : context.fixtures.chains) {
    Checker::Context in(c, "chain " + chain.label());
    c.expect(loaded->encode(chain) == s.tokenizer->encode(chain),
             "the tokenizer loaded from save_weights gives the same states");
  }
  if (auto* t = loaded->trainable())
    c.expect(fixed_tokenizer_loss(*t, context.fixtures.chains) ==
                 fixed_tokenizer_loss(*s.trainable, context.fixtures.chains),
             "and the same loss on a fixed batch");
}

void tokenizer_seeded(Checker& c, const std::string& name, const RunContext& context) {
  auto first = trainable_tokenizer(name, context, 0);
  if (!first.trainable) return c.skip("not trainable (trainable() is null)");
  auto second = trainable_tokenizer(name, context, 0);
  const auto a = train_tokenizer(c, *first.trainable, context.fixtures.chains, 2, 1e-3, 5);
  const auto b = train_tokenizer(c, *second.trainable, context.fixtures.chains, 2, 1e-3, 5);
  for (size_t k = 0; k < a.size() && k < b.size(); ++k)
    c.expect(std::abs(a[k] - b[k]) <= 1e-6 * std::max(1.0, std::abs(a[k])),
             text("step ", k, ": equal seeds give equal losses, ", a[k], " vs ", b[k]));
}

// ----------------------------------------------------------------------------------------------- pretraining

// The objective's batch: the first two fixture chains (the fewest that give a contrastive objective negatives;
// a step costs about a second on a CPU).
std::vector<ChainStructure> objective_batch(const RunContext& context) {
  return {context.fixtures.chains[0], context.fixtures.chains[1]};
}

struct Pretraining {
  std::shared_ptr<StructureEncoder> encoder;
  std::shared_ptr<StructurePretrainingObjective> objective;
  std::vector<torch::Tensor> parameters;  // the encoder's and the objective's, as `pretrain-pgnn` optimises them
};

// The objective, attached to a fresh encoder of its family (built from the examples' [structure_encoder.NAME]).
Pretraining pretraining(const std::string& name, const RunContext& context, uint64_t seed) {
  torch::manual_seed(seed);
  Pretraining p;
  p.objective = build_component<StructurePretrainingObjective>(name, context);
  p.encoder =
      build_component<StructureEncoder>(p.objective->encoder_name(), context, context.scratch / "encoder-inputs");
  p.objective->attach(p.encoder);
  p.parameters = p.encoder->parameters();
  for (const auto& t : p.objective->parameters()) p.parameters.push_back(t);
  return p;
}

void train_mode(Pretraining& p, bool on) {
  p.encoder->train(on);
  p.objective->train(on);
}

std::vector<double> train_objective(Checker& c, Pretraining& p, const std::vector<ChainStructure>& batch, int steps,
                                    double lr, uint64_t seed) {
  torch::optim::Adam adam(p.parameters, torch::optim::AdamOptions(lr));
  at::Generator generator = at::detail::createCPUGenerator(seed);
  train_mode(p, true);
  std::vector<double> curve;
  for (int step = 0; step < steps; ++step) {
    adam.zero_grad();
    const torch::Tensor loss = p.objective->loss(batch, generator);
    curve.push_back(loss.item<double>());
    if (!c.expect(std::isfinite(curve.back()), text("step ", step, ": the loss is finite, got ", curve.back()))) break;
    loss.backward();
    adam.step();
  }
  return curve;
}

// The loss on fixed views (generator seed 1234) without gradients, in the current mode.
double fixed_objective_loss(Pretraining& p, const std::vector<ChainStructure>& batch) {
  torch::NoGradGuard no_grad;
  at::Generator generator = at::detail::createCPUGenerator(1234);
  return p.objective->loss(batch, generator).item<double>();
}

void objective_learns(Checker& c, const std::string& name, const RunContext& context) {
  auto p = pretraining(name, context, 0);
  const auto kind = StructurePretrainingObjective::kind;
  const int steps = setting(context, kind, name, "steps", 10);
  const double lr = context.examples.train_setting(kind, name, "lr", 1e-3);
  const auto batch = objective_batch(context);
  train_mode(p, true);
  const double before = fixed_objective_loss(p, batch);
  train_objective(c, p, batch, steps, lr, 0);
  const double after = fixed_objective_loss(p, batch);
  c.note(text("fixed-view loss ", before, " -> ", after, " after ", steps, " steps"));
  c.expect(after < before, text(steps, " training steps lower the loss on fixed views: ", before, " -> ", after));
}

void objective_gradients(Checker& c, const std::string& name, const RunContext& context) {
  auto p = pretraining(name, context, 0);
  train_mode(p, true);
  at::Generator generator = at::detail::createCPUGenerator(0);
  const torch::Tensor loss = p.objective->loss(objective_batch(context), generator);
  if (!c.expect(loss.dim() == 0, "the loss is a scalar")) return;
  loss.backward();
  const auto check = [&](const std::string& owner, torch::nn::Module& module) {
    for (const auto& item : module.named_parameters()) {
      if (!item.value().requires_grad()) continue;
      const auto& grad = item.value().grad();
      if (c.expect(grad.defined(), owner + " parameter " + item.key() + " gets a gradient"))
        c.expect(torch::isfinite(grad).all().item<bool>(), owner + " parameter " + item.key() + ": finite gradient");
    }
  };
  check("encoder", *p.encoder);
  check("objective", *p.objective);
}

void objective_state(Checker& c, const std::string& name, const RunContext& context) {
  auto trained = pretraining(name, context, 0);
  train_objective(c, trained, objective_batch(context), 1, 1e-3, 0);
  // What `pretrain-pgnn` keeps: the encoder's weights file; the objective's heads as their state_dict.
  const auto file = context.scratch / "encoder.safetensors";
  trained.encoder->save_weights(file);
  auto copy = pretraining(name, context, 99);  // other initial weights
  copy.encoder->load_weights(file);
  {
    torch::NoGradGuard no_grad;
    auto source = trained.objective->named_parameters();
    for (auto& t : copy.objective->named_parameters()) t.value().copy_(source[t.key()]);
    auto buffers = trained.objective->named_buffers();
    for (auto& t : copy.objective->named_buffers()) t.value().copy_(buffers[t.key()]);
  }
  train_mode(trained, false);
  train_mode(copy, false);
  const double a = fixed_objective_loss(trained, objective_batch(context));
  const double b = fixed_objective_loss(copy, objective_batch(context));
  c.expect(a == b, text("encoder weights file + objective state_dict reproduce the loss: ", a, " vs ", b));
}

void objective_seeded(Checker& c, const std::string& name, const RunContext& context) {
  auto first = pretraining(name, context, 0);
  auto second = pretraining(name, context, 0);
  const auto a = train_objective(c, first, objective_batch(context), 2, 1e-3, 5);
  const auto b = train_objective(c, second, objective_batch(context), 2, 1e-3, 5);
  for (size_t k = 0; k < a.size() && k < b.size(); ++k)
    c.expect(std::abs(a[k] - b[k]) <= 1e-6 * std::max(1.0, std::abs(a[k])),
             text("step ", k, ": equal seeds give equal losses, ", a[k], " vs ", b[k]));
}

void objective_unattached(Checker& c, const std::string& name, const RunContext& context) {
  const auto objective = build_component<StructurePretrainingObjective>(name, context);
  at::Generator generator = at::detail::createCPUGenerator(0);
  bool reported = false;
  try {
    objective->loss(objective_batch(context), generator);
  } catch (const Error&) {
    reported = true;
  } catch (const std::exception& e) {
    return c.failure(text("loss() before attach() threw a non-sapling::Error: ", e.what()));
  }
  c.expect(reported, "loss() before attach() throws sapling::Error");
}

}  // namespace trainable_impl

std::vector<Check> trainable_tokenizer_checks() {
  using namespace trainable_impl;
  const std::string kind = StructureTokenizer::kind;
  return {{kind, "trainable: a few steps lower the loss on a fixed batch", tokenizer_learns},
          {kind, "trainable: gradients are finite and reach every parameter", tokenizer_gradients},
          {kind, "trainable: save_weights then `weights = FILE` gives the same states", tokenizer_weights},
          {kind, "trainable: equal seeds give equal training runs", tokenizer_seeded}};
}

std::vector<Check> pretraining_objective_checks() {
  using namespace trainable_impl;
  const std::string kind = StructurePretrainingObjective::kind;
  return {{kind, "a few steps lower the loss on fixed views", objective_learns},
          {kind, "gradients are finite and reach every parameter of encoder and objective", objective_gradients},
          {kind, "the encoder's weights and the objective's state_dict reproduce the loss", objective_state},
          {kind, "equal seeds give equal training runs", objective_seeded},
          {kind, "loss() before attach() is a clear error", objective_unattached}};
}

}  // namespace sapling::conformance
