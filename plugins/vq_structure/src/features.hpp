// Per-residue backbone-environment features of the vq_structure tokenizer: invariant to rotation and translation.
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "sapling/structure.hpp"

namespace sapling::vq {

// Layout of one residue's feature vector (README.md, "Features"):
//   4 sequence neighbours (i-2, i-1, i+1, i+2): CA offset in i's frame / 10 A (3) + present (1)   = 16
//   3 backbone dihedrals (phi, psi, omega): sin, cos (2) + present (1)                            =  9
//   per spatial neighbour (K nearest CAs with |i-j| > 2): CA offset in i's frame / 10 A (3),
//     its C-CA direction in i's frame (3), signed log sequence separation (1), present (1)        = 8 K
inline constexpr int64_t kWindowFeatures = 16;
inline constexpr int64_t kDihedralFeatures = 9;
inline constexpr int64_t kNeighbourFeatures = 8;
// Bumped when the features change meaning: weights files record it and loading checks it.
inline constexpr int64_t kFeatureVersion = 1;

inline int64_t num_features(int64_t neighbours) {
  return kWindowFeatures + kDihedralFeatures + kNeighbourFeatures * neighbours;
}

struct ResidueFeatures {
  torch::Tensor values;  // [L, num_features] float32; zero rows where !valid
  torch::Tensor valid;   // [L] bool: N, CA and C present, so residue i has a local frame
};

// Features of every residue of `chain` (coords [L, 5, 3], NaN where missing), computed in float64 in one
// batched pass. Fails naming the chain when coords do not have that shape.
ResidueFeatures residue_features(const ChainStructure& chain, int64_t neighbours);

}  // namespace sapling::vq
