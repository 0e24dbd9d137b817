// Weighted sum of per-residue loss vectors after selection, with per-token or published constant normalisation.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "sapling/export.hpp"

namespace sapling {

// One selected loss term: a per-residue vector, which residues count, its weight.
struct WeightedLoss {
  std::string name;
  torch::Tensor per_residue;  // [N]
  torch::Tensor keep;         // [N] bool; undefined = keep all
  double weight = 1.0;        // >= 0
  // Constant normalisation only: the fraction of residues the term is
  // expected to keep (mask ratio 0.15 for MLM, selection ratio for selected
  // terms, 1 for unselected structural terms).
  double ratio = 1.0;
};

enum class LossNormalization {
  TokenMean,          // sum of kept losses / number kept (0 when nothing is kept)
  PublishedConstant,  // sum of kept losses / (mean_length * batch_size * ratio)
};

struct NormalizationSettings {
  LossNormalization mode = LossNormalization::TokenMean;
  double mean_length = 240.50554219467827;  // the published constant (official constants.py MEAN_SEQ_LEN)
  int64_t batch_size = 1;      // proteins in the micro-batch
};

struct CombinedLoss {
  torch::Tensor total;                    // scalar, differentiable: sum of weight * normalised term
  std::map<std::string, double> terms;    // name -> normalised term (before weighting), for logging
  std::map<std::string, int64_t> counts;  // name -> residues kept
};

// A loss with two directions averaged (the residue contrastive loss) enters
// as two terms with half its weight each. Fails on negative weights, non-1-D
// vectors, keep masks of another length, or non-positive constants.
SAPLING_API CombinedLoss combine_losses(const std::vector<WeightedLoss>& terms,
                                        const NormalizationSettings& settings = {});

}  // namespace sapling
