// Evaluation tasks (contact prediction, secondary structure probes, perplexity, your own) as a registry.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/registry.hpp"

namespace sapling {

// What a task reports: named scalar metrics in a fixed order (the order they
// are printed and written), plus optional task-specific JSON (per-protein
// values, an example predicted vs true contact map, ... for later plots).
struct SAPLING_API EvalResult {
  std::vector<std::pair<std::string, double>> metrics;
  nlohmann::json extra = nlohmann::json::object();

  // Appends a metric; fails if the name is already present.
  void add(const std::string& name, double value);
  // Value of a metric; fails naming the missing metric and the ones present.
  double get(const std::string& name) const;
  bool has(const std::string& name) const;
  // {"task": ..., "metrics": {name: value, ...} (in order), "extra": ...}.
  nlohmann::ordered_json to_json(const std::string& task) const;
  // One "name  value" line per metric, for terminals.
  std::string format() const;
};

// A benchmark on a frozen pLM. The task's options (data, split, seed, caps)
// come through its registry factory, so a task object is one configured
// evaluation; run() may be called on several models and must not change them
// (it runs under NoGradGuard on the model's device and leaves train/eval mode
// as found). Equal options give equal results: every random choice is seeded.
// Each registration's description and option docs state the task's data and
// train/test split, which `sapling eval TASK --help` prints.
class SAPLING_API EvaluationTask {
 public:
  static constexpr const char* kind = "evaluation_task";
  virtual ~EvaluationTask();
  virtual EvalResult run(SequenceEncoder& model) = 0;
};

// Defined in evaluation.cpp as an explicit specialisation (the generic
// instance() lives in interfaces.cpp).
template <>
SAPLING_API Registry<EvaluationTask>& Registry<EvaluationTask>::instance();
extern template class Registry<EvaluationTask>;
using EvaluationTaskRegistry = Registry<EvaluationTask>;

}  // namespace sapling
