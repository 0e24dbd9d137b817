// Per-residue fields for losses (LossInputs::fields): one chain's field by name, from a built-in source or a provider.
#pragma once
#include <torch/torch.h>

#include <string>

#include "sapling/export.hpp"
#include "sapling/structure.hpp"

namespace sapling {

// True for the fields every structure dataset provides without a plugin ("coords", "bfactor").
SAPLING_API bool is_builtin_field(const std::string& name);

// Where `name` comes from, for messages and `plugins list`: "built in", "field provider '<name>' of plugin
// '<plugin>'", or "" when neither a built-in source nor a loaded FieldProvider gives it.
SAPLING_API std::string field_source(const std::string& name);

// The field `name` of one chain, [L, ...] with L = chain.length(), as the trainer lays it out per residue:
// "coords" [L, 5, 3] float32, "bfactor" [L] float32 (NaN without B-factors), or what the FieldProvider
// registered under `name` computes (built with its schema's defaults; its result's shape and dtype checked
// against what it declares). Fails naming the field, the chain and the provider.
SAPLING_API torch::Tensor compute_field(const std::string& name, const ChainStructure& chain);

}  // namespace sapling
