// The list of every conformance check, in the order the runner reports them.
#include "checks.hpp"

namespace sapling::conformance {

std::vector<Check> all_checks() {
  std::vector<Check> out = registration_checks();
  for (auto list :
       {sequence_encoder_checks(), structure_encoder_checks(), tokenizer_checks(), trainable_tokenizer_checks(),
        loss_checks(), selector_checks(), evaluation_task_checks(), pretraining_objective_checks(),
        field_provider_checks()})
    out.insert(out.end(), list.begin(), list.end());
  return out;
}

}  // namespace sapling::conformance
