// Registers the evaluation tasks (contacts, secondary structure, perplexity, downstream tasks) with the core.
#include "sapling/plugin.hpp"
#include "tasks.hpp"

SAPLING_PLUGIN("evaluation", "Evaluation tasks: unsupervised and probed contacts, secondary structure, MLM perplexity, fitness, variant effects, residue classification") {
  sapling::evaluation::register_contact_tasks();
  sapling::evaluation::register_sequence_tasks();
  sapling::evaluation::register_downstream_tasks();
}
