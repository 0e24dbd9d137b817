// Masked-language-model input corruption shared by every trainer: pick residues, replace them, keep labels.
#pragma once
#include <torch/torch.h>

#include "sapling/export.hpp"
#include "sapling/tokenizer.hpp"

namespace sapling {

// Defaults are the published structure-alignment recipe: 15% of real residues,
// every selected one replaced by <mask> (no 80/10/10 split). BERT/ESM-style
// 80/10/10 is replace_with_mask = 0.8, replace_with_random = 0.1 (the rest
// keep their residue but are still predicted).
struct MaskingOptions {
  double probability = 0.15;         // chance that a real residue is selected (independently per residue)
  double replace_with_mask = 1.0;    // of the selected: fraction that becomes <mask>
  double replace_with_random = 0.0;  // of the selected: fraction that becomes a random standard residue
  // <unk> tokens count as residues (maskable, scored by the heads), as every
  // non-special token does in the published code; false: sapling's default.
  bool unknown_is_residue = false;
};

struct MaskedTokens {
  torch::Tensor ids;     // [B, T] int64, the corrupted input
  torch::Tensor labels;  // [B, T] int64, the original id at selected positions, -100 elsewhere
};

// Label value of positions that are not predicted (PyTorch's cross-entropy default).
constexpr int64_t kIgnoreLabel = -100;

// [B, T] bool: true at residue tokens (Tokenizer::is_residue) inside `mask`,
// and at <unk> when include_unknown; BOS/EOS/pad/<mask>/other specials are false.
SAPLING_API torch::Tensor real_residue_mask(const torch::Tensor& ids, const torch::Tensor& mask, const Tokenizer& tokenizer,
                                            bool include_unknown = false);

// Selects each position with residue_mask true with probability
// options.probability (Bernoulli, as the HF/ESM data collators do, so the
// count varies around 15%), then replaces as the options say. Random
// replacements draw uniformly from tokenizer.standard_residue_ids(). All draws
// come from `generator`, so a seeded generator reproduces the same masks.
// Fails on probabilities outside [0, 1] or replace fractions summing above 1.
SAPLING_API MaskedTokens mask_tokens(const torch::Tensor& ids, const torch::Tensor& residue_mask, const Tokenizer& tokenizer,
                                     const MaskingOptions& options, torch::Generator& generator);

// A CPU generator seeded with `seed` (for mask_tokens).
SAPLING_API torch::Generator make_generator(uint64_t seed);

}  // namespace sapling
