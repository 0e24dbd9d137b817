// Invariant backbone-environment features: each residue's neighbourhood described in its own N-CA-C frame.
#include "features.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "sapling/error.hpp"

namespace sapling::vq {
namespace {

using torch::indexing::Slice;

// t[i + k] at row i, NaN where i + k is outside the chain.
torch::Tensor shifted(const torch::Tensor& t, int64_t k) {
  const int64_t len = t.size(0);
  torch::Tensor out = torch::full_like(t, std::numeric_limits<double>::quiet_NaN());
  if (std::abs(k) >= len) return out;
  if (k >= 0)
    out.slice(0, 0, len - k).copy_(t.slice(0, k, len));
  else
    out.slice(0, -k, len).copy_(t.slice(0, 0, len + k));
  return out;
}

torch::Tensor finite_rows(const torch::Tensor& t) { return torch::isfinite(t).all(-1); }

torch::Tensor unit(const torch::Tensor& v) { return v / v.norm(2, -1, true).clamp_min(1e-8); }

torch::Tensor row_dot(const torch::Tensor& a, const torch::Tensor& b) { return (a * b).sum(-1); }

// Dihedral angle a-b-c-d per row (radians); NaN where an atom is missing.
torch::Tensor dihedral(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c, const torch::Tensor& d) {
  const torch::Tensor axis = unit(c - b);
  const torch::Tensor v = (a - b) - row_dot(a - b, axis).unsqueeze(-1) * axis;
  const torch::Tensor w = (d - c) - row_dot(d - c, axis).unsqueeze(-1) * axis;
  return torch::atan2(row_dot(torch::cross(axis, v, -1), w), row_dot(v, w));
}

}  // namespace

ResidueFeatures residue_features(const ChainStructure& chain, int64_t neighbours) {
  const int64_t len = chain.length();
  chain.require_backbone_coords();
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const torch::Tensor x = chain.coords.to(torch::kFloat64);
  const torch::Tensor n = x.select(1, kN), ca = x.select(1, kCA), c = x.select(1, kC);
  const torch::Tensor valid = finite_rows(n) & finite_rows(ca) & finite_rows(c);

  // Frame of residue i: rows are the axes (C-CA direction, N in the plane, their normal), so that
  // frame @ (p - CA_i) is p in i's local coordinates, unchanged by any rigid motion of the chain.
  const torch::Tensor e1 = unit(c - ca);
  const torch::Tensor e2 = unit((n - ca) - row_dot(n - ca, e1).unsqueeze(-1) * e1);
  const torch::Tensor frame = torch::stack({e1, e2, torch::cross(e1, e2, -1)}, 1);  // [L, 3, 3]
  const auto local = [&](const torch::Tensor& v) { return torch::matmul(frame, v.unsqueeze(-1)).squeeze(-1); };

  std::vector<torch::Tensor> parts;
  // Missing inputs give NaN; they become 0 with a 0 "present" flag, so the encoder can tell them apart.
  const auto add = [&](const torch::Tensor& values, const torch::Tensor& present) {
    parts.push_back(torch::where(present.unsqueeze(-1), values, torch::zeros_like(values)));
    parts.push_back(present.to(torch::kFloat64).unsqueeze(-1));
  };
  for (const int64_t k : {-2, -1, 1, 2}) {
    const torch::Tensor offset = shifted(ca, k) - ca;
    add(local(offset) / 10.0, finite_rows(offset) & valid);
  }
  const torch::Tensor next_n = shifted(n, 1), next_ca = shifted(ca, 1);
  for (const torch::Tensor& angle : {dihedral(shifted(c, -1), n, ca, c), dihedral(n, ca, c, next_n),
                                     dihedral(ca, c, next_n, next_ca)})
    add(torch::stack({torch::sin(angle), torch::cos(angle)}, -1), torch::isfinite(angle));

  if (neighbours > 0) {
    // Nearest CAs among residues with a frame, excluding i and its sequence window |i - j| <= 2.
    const torch::Tensor safe_ca = torch::where(valid.unsqueeze(-1), ca, torch::zeros_like(ca));
    torch::Tensor dist = torch::cdist(safe_ca.unsqueeze(0), safe_ca.unsqueeze(0)).squeeze(0);
    const torch::Tensor positions = torch::arange(len, f64);
    const torch::Tensor separation = positions.unsqueeze(0) - positions.unsqueeze(1);  // j - i
    const torch::Tensor excluded = separation.abs().le(2) | valid.logical_not().unsqueeze(0);
    dist = dist.masked_fill(excluded, std::numeric_limits<double>::infinity());
    const int64_t k = std::min(neighbours, len);
    const auto nearest = dist.topk(k, -1, /*largest=*/false, /*sorted=*/true);
    const torch::Tensor nearest_dist = std::get<0>(nearest), nearest_index = std::get<1>(nearest);
    for (int64_t slot = 0; slot < neighbours; ++slot) {
      if (slot >= k) {  // a chain shorter than the neighbour count: absent slots
        parts.push_back(torch::zeros({len, kNeighbourFeatures}, f64));
        continue;
      }
      const torch::Tensor j = nearest_index.select(1, slot);
      const torch::Tensor present = torch::isfinite(nearest_dist.select(1, slot)) & valid;
      const torch::Tensor s = separation.gather(1, j.unsqueeze(1)).squeeze(1);
      // Signed log separation: near and far contacts, strands in either direction, stay apart.
      const torch::Tensor sep = torch::sign(s) * torch::log1p(s.abs()) / 5.0;
      add(torch::cat({local(ca.index_select(0, j) - ca) / 10.0, local(e1.index_select(0, j)), sep.unsqueeze(-1)}, -1),
          present);
    }
  }
  torch::Tensor values = torch::cat(parts, -1);
  values = torch::where(valid.unsqueeze(-1), values, torch::zeros_like(values));
  return {values.to(torch::kFloat32).contiguous(), valid};
}

}  // namespace sapling::vq
