// EvalResult helpers, the EvaluationTask anchor and its registry instance.
#include "sapling/evaluation.hpp"

#include <iomanip>
#include <sstream>

#include "sapling/error.hpp"

namespace sapling {

void EvalResult::add(const std::string& name, double value) {
  if (has(name)) fail("evaluation metric '", name, "' reported twice");
  metrics.emplace_back(name, value);
}

bool EvalResult::has(const std::string& name) const {
  for (const auto& m : metrics)
    if (m.first == name) return true;
  return false;
}

double EvalResult::get(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& m : metrics) {
    if (m.first == name) return m.second;
    names.push_back(m.first);
  }
  fail("no evaluation metric '", name, "'", did_you_mean(name, names));
}

nlohmann::ordered_json EvalResult::to_json(const std::string& task) const {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  out["task"] = task;
  out["metrics"] = nlohmann::ordered_json::object();
  for (const auto& [name, value] : metrics) out["metrics"][name] = value;
  // extra is a plain (key-sorted) json; carried over through its text.
  out["extra"] = nlohmann::ordered_json::parse(extra.dump());
  return out;
}

std::string EvalResult::format() const {
  size_t width = 0;
  for (const auto& m : metrics) width = std::max(width, m.first.size());
  std::ostringstream out;
  for (const auto& [name, value] : metrics)
    out << std::left << std::setw(static_cast<int>(width) + 2) << name << std::setprecision(4) << std::fixed << value
        << "\n";
  return out.str();
}

EvaluationTask::~EvaluationTask() = default;

template <>
Registry<EvaluationTask>& Registry<EvaluationTask>::instance() {
  static Registry registry;
  return registry;
}

template class Registry<EvaluationTask>;

}  // namespace sapling
