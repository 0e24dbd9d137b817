// Registration entry points of the evaluation plugin's task families (called from the plugin descriptor).
#pragma once

namespace sapling::evaluation {

void register_contact_tasks();   // contact_unsupervised, contact_probe
void register_sequence_tasks();  // secondary_structure, mlm_perplexity
void register_downstream_tasks();  // fitness, variant_effect, residue_classification, structure_probe

}  // namespace sapling::evaluation
