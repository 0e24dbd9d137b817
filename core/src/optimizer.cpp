// AdamW with named state, global-norm gradient clipping and the warm-up + decay learning-rate factor.
#include "sapling/internal/optimizer.hpp"

#include <cmath>
#include <map>

#include "sapling/error.hpp"

namespace sapling {

AdamW::AdamW(std::vector<ParameterGroup> groups, AdamWSettings settings)
    : groups_(std::move(groups)), settings_(settings) {
  for (const auto& group : groups_) {
    std::vector<torch::Tensor> m, v, master;
    for (const auto& p : group.parameters) {
      // A bf16 / float16 parameter (precision = "bf16-pure") is updated through a float32 master copy with float32
      // moments, as DeepSpeed's bf16 optimiser does; a float32 parameter is its own master (no copy).
      const bool low_precision = p.tensor.scalar_type() != torch::kFloat32 && p.tensor.is_floating_point();
      master.push_back(low_precision ? p.tensor.detach().to(torch::kFloat32).clone() : torch::Tensor());
      const auto& like = low_precision ? master.back() : p.tensor;
      m.push_back(torch::zeros_like(like, torch::MemoryFormat::Preserve));
      v.push_back(torch::zeros_like(like, torch::MemoryFormat::Preserve));
    }
    exp_avg_.push_back(std::move(m));
    exp_avg_sq_.push_back(std::move(v));
    master_.push_back(std::move(master));
  }
}

void AdamW::step() {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bias1 = 1.0 - std::pow(settings_.beta1, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(settings_.beta2, static_cast<double>(step_));
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    for (size_t i = 0; i < group.parameters.size(); ++i) {
      auto& model_param = group.parameters[i].tensor;
      if (!model_param.grad().defined()) continue;
      // bf16-pure: the update runs on the float32 master copy and is rounded into the parameter at the end.
      const auto& master = master_[g][i];
      auto param = master.defined() ? master : model_param;
      const auto grad = model_param.grad().to(param.scalar_type());
      // Same operation order as torch.optim.AdamW's single-tensor path.
      param.mul_(1.0 - group.lr * group.weight_decay);
      auto& m = exp_avg_[g][i];
      auto& v = exp_avg_sq_[g][i];
      m.lerp_(grad, 1.0 - settings_.beta1);
      v.mul_(settings_.beta2).addcmul_(grad, grad, 1.0 - settings_.beta2);
      const auto denom = (v.sqrt() / std::sqrt(bias2)).add_(settings_.eps);
      param.addcdiv_(m, denom, -group.lr / bias1);
      if (master.defined()) model_param.copy_(master);
    }
  }
}

void AdamW::zero_grad() {
  for (auto& group : groups_)
    for (auto& p : group.parameters) {
      auto& grad = p.tensor.mutable_grad();
      if (grad.defined()) grad = torch::Tensor();  // set_to_none, PyTorch's default
    }
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].parameters.size(); ++i) {
      const auto& name = groups_[g].parameters[i].name;
      out.emplace_back("exp_avg." + name, exp_avg_[g][i]);
      out.emplace_back("exp_avg_sq." + name, exp_avg_sq_[g][i]);
      if (master_[g][i].defined()) out.emplace_back("master." + name, master_[g][i]);
    }
  out.emplace_back("step", torch::tensor(step_, torch::kInt64));
  return out;
}

void AdamW::load_state(const NamedTensors& state, const std::string& source) {
  std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
  auto take = [&](const std::string& key, const torch::Tensor& like) {
    const auto it = by_name.find(key);
    if (it == by_name.end()) fail(source, ": optimiser state has no '", key, "' (was the model or its heads changed?)");
    if (it->second.sizes() != like.sizes())
      fail(source, ": optimiser state '", key, "' has shape ", it->second.sizes(), ", the parameter has ", like.sizes());
    return it->second.to(like.device(), like.scalar_type()).clone();
  };
  const auto step_it = by_name.find("step");
  if (step_it == by_name.end() || step_it->second.numel() != 1) fail(source, ": optimiser state has no 'step'");
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].parameters.size(); ++i) {
      const auto& name = groups_[g].parameters[i].name;
      exp_avg_[g][i] = take("exp_avg." + name, exp_avg_[g][i]);
      exp_avg_sq_[g][i] = take("exp_avg_sq." + name, exp_avg_sq_[g][i]);
      if (master_[g][i].defined()) {
        // A state written without master weights (a float32 run resumed in bf16-pure) starts them from the parameter.
        if (by_name.count("master." + name)) master_[g][i] = take("master." + name, master_[g][i]);
        torch::NoGradGuard no_grad;
        groups_[g].parameters[i].tensor.copy_(master_[g][i]);
      }
    }
  step_ = step_it->second.item<int64_t>();
}

double clip_grad_norm(const std::vector<ParameterGroup>& groups, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& group : groups)
    for (const auto& p : group.parameters)
      if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
  if (grads.empty()) return 0.0;
  std::vector<torch::Tensor> norms;
  for (const auto& g : grads) norms.push_back(g.detach().to(torch::kFloat32).norm());
  const double total = torch::stack(norms).norm().item<double>();
  if (max_norm > 0.0) {
    const double coefficient = max_norm / (total + 1e-6);
    if (coefficient < 1.0)
      for (auto& g : grads) g.mul_(coefficient);
  }
  return total;
}

DecaySchedule parse_decay_schedule(const std::string& name) {
  if (name == "cosine") return DecaySchedule::Cosine;
  if (name == "linear") return DecaySchedule::Linear;
  if (name == "constant") return DecaySchedule::Constant;
  fail("unknown learning-rate schedule '", name, "' (expected cosine, linear or constant)");
}

double lr_factor(int64_t step, int64_t warmup, int64_t total, DecaySchedule schedule, double min_ratio) {
  if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (schedule == DecaySchedule::Constant) return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double progress = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
  const double shape = schedule == DecaySchedule::Cosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return min_ratio + (1.0 - min_ratio) * shape;
}

}  // namespace sapling
