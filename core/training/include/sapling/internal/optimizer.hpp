// AdamW over named parameter groups with a warm-up + decay schedule; its state saves by parameter name.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/safetensors.hpp"

namespace sapling {

struct NamedParameter {
  std::string name;  // unique, stable across runs ("model.<key>", "heads.<loss>.<key>")
  torch::Tensor tensor;
};

struct ParameterGroup {
  std::string name;  // "plm", "plm_1d" (biases, norms), "heads", "heads_1d"
  std::vector<NamedParameter> parameters;
  double peak_lr = 1e-4;
  double weight_decay = 0.0;
  double lr = 0.0;  // current, set by the schedule
};

struct AdamWSettings {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
};

// torch.optim.AdamW (amsgrad off, maximize off) with the update written out,
// so the state is plain named tensors: exp_avg.<name>, exp_avg_sq.<name>,
// and one step count; a bf16 or float16 parameter also has a float32 master
// copy (master.<name>) that the update runs on and rounds into the parameter. Written here rather than torch::optim::AdamW because
// LibTorch serialises optimiser state keyed by tensor addresses and parameter
// order; named state survives reordering and is readable from Python.
class SAPLING_API AdamW {
 public:
  AdamW(std::vector<ParameterGroup> groups, AdamWSettings settings);

  // One update with the gradients in .grad() (parameters without a gradient are skipped).
  void step();
  void zero_grad();

  std::vector<ParameterGroup>& groups() { return groups_; }
  const std::vector<ParameterGroup>& groups() const { return groups_; }
  int64_t steps() const { return step_; }

  // Moments as named tensors plus the step count (for checkpoints).
  NamedTensors state() const;
  // Restores a state written by state(); fails naming the first parameter
  // whose moment is missing or has another shape.
  void load_state(const NamedTensors& state, const std::string& source);

 private:
  std::vector<ParameterGroup> groups_;
  AdamWSettings settings_;
  int64_t step_ = 0;
  std::vector<std::vector<torch::Tensor>> exp_avg_, exp_avg_sq_;
  std::vector<std::vector<torch::Tensor>> master_;  // float32 copies of lower-precision parameters, else undefined
};

// Total gradient norm (L2 over every gradient, as torch.nn.utils.clip_grad_norm_)
// and, when max_norm > 0, gradients scaled by min(1, max_norm / (norm + 1e-6)).
SAPLING_API double clip_grad_norm(const std::vector<ParameterGroup>& groups, double max_norm);

enum class DecaySchedule { Cosine, Linear, Constant };
SAPLING_API DecaySchedule parse_decay_schedule(const std::string& name);

// Learning-rate factor at optimiser step `step` (0-based, the step about to
// be taken): linear warm-up (step + 1) / warmup over `warmup` steps, then
// decay to `min_ratio` at `total` steps. HF's get_cosine_schedule_with_warmup
// uses step / warmup, which spends the first step at learning rate 0; the
// decay part is the same formula.
SAPLING_API double lr_factor(int64_t step, int64_t warmup, int64_t total, DecaySchedule schedule, double min_ratio);

}  // namespace sapling
