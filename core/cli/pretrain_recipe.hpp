// pretrain-pgnn recipes (kind = "pretrain-pgnn"): their tables, validated, shared with `sapling recipe check`.
#pragma once
#include "sapling/recipe.hpp"
#include "sapling/internal/structure_pretraining.hpp"

namespace sapling::cli {

// Validates [pgnn] and [objective] (component + options, against the plugins' schemas; absent: the default
// ones), [data] (dataset, split), [train] (steps, batch_size, lr, seed, device, checkpoint_every, init_weights)
// and [output] (weights, metrics, tensorboard), with file:line; plugins must be loaded first.
StructurePretrainingSettings read_pretrain_recipe(const Recipe& recipe);

}  // namespace sapling::cli
