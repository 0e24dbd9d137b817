// Out-of-line anchors for the interfaces (one vtable/typeinfo copy) and the registry instances.
#include "sapling/interfaces.hpp"

namespace sapling {

SequenceEncoder::~SequenceEncoder() = default;
StructureEncoder::~StructureEncoder() = default;
StructureTokenizer::~StructureTokenizer() = default;
AlignmentLoss::~AlignmentLoss() = default;
ResidueSelector::~ResidueSelector() = default;

void SequenceEncoder::save_tokenizer(const std::filesystem::path&) const {}

SequenceEncoder::ParameterGroups SequenceEncoder::parameter_groups() {
  // PyTorch habit: no weight decay on biases and normalisation weights (1-D).
  ParameterGroups groups;
  for (const auto& p : named_parameters()) {
    if (!p.value().requires_grad()) continue;
    if (p.value().dim() < 2)
      groups.no_decay.push_back(p.value());
    else
      groups.decay.push_back(p.value());
  }
  return groups;
}

std::vector<RegistrationLog::Item>& RegistrationLog::items() {
  static std::vector<Item> items;
  return items;
}

std::string& RegistrationLog::current_plugin() {
  static std::string name = "core";
  return name;
}

template <typename Interface>
Registry<Interface>& Registry<Interface>::instance() {
  static Registry registry;
  return registry;
}

template class Registry<SequenceEncoder>;
template class Registry<StructureEncoder>;
template class Registry<StructureTokenizer>;
template class Registry<AlignmentLoss>;
template class Registry<ResidueSelector>;

}  // namespace sapling
