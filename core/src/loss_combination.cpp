// combine_losses (see loss_combination.hpp): selection masks applied, each term normalised, weighted, summed.
#include "sapling/internal/loss_combination.hpp"

#include "sapling/error.hpp"

namespace sapling {

CombinedLoss combine_losses(const std::vector<WeightedLoss>& terms, const NormalizationSettings& settings) {
  const bool constant = settings.mode == LossNormalization::PublishedConstant;
  if (constant && (settings.mean_length <= 0.0 || settings.batch_size <= 0))
    fail("combine_losses: mean_length and batch_size must be positive (got ", settings.mean_length, ", ",
         settings.batch_size, ")");
  CombinedLoss out;
  for (const auto& term : terms) {
    if (!term.per_residue.defined() || term.per_residue.dim() != 1)
      fail("combine_losses: term '", term.name, "' must be a 1-D per-residue vector");
    if (!(term.weight >= 0.0)) fail("combine_losses: term '", term.name, "' has negative weight ", term.weight);
    auto values = term.per_residue;
    int64_t kept = values.size(0);
    if (term.keep.defined()) {
      if (term.keep.dim() != 1 || term.keep.size(0) != values.size(0))
        fail("combine_losses: term '", term.name, "' keep mask has shape ", term.keep.sizes(), ", expected [",
             values.size(0), "]");
      const auto keep = term.keep.to(values.device(), torch::kBool);
      // where (not indexing): same graph shape every batch, and a dropped NaN/inf cannot leak into the sum.
      values = torch::where(keep, values, torch::zeros_like(values));
      kept = keep.sum().item<int64_t>();
    }
    torch::Tensor normalised;
    if (constant) {
      if (!(term.ratio > 0.0)) fail("combine_losses: term '", term.name, "' needs a positive ratio, got ", term.ratio);
      normalised = values.sum() / (settings.mean_length * static_cast<double>(settings.batch_size) * term.ratio);
    } else {
      normalised = kept > 0 ? values.sum() / static_cast<double>(kept) : values.sum() * 0.0;
    }
    out.terms[term.name] = normalised.item<double>();
    out.counts[term.name] = kept;
    auto weighted = normalised * term.weight;
    out.total = out.total.defined() ? out.total + weighted : weighted;
  }
  if (!out.total.defined()) out.total = torch::zeros({});
  return out;
}

}  // namespace sapling
