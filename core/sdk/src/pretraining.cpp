// Out-of-line anchor of StructurePretrainingObjective and its registry instance.
#include "sapling/pretraining.hpp"

namespace sapling {

StructurePretrainingObjective::~StructurePretrainingObjective() = default;

template <>
Registry<StructurePretrainingObjective>& Registry<StructurePretrainingObjective>::instance() {
  static Registry registry;
  return registry;
}

template class Registry<StructurePretrainingObjective>;

}  // namespace sapling
