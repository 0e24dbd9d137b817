// Rank correlation, MCC/F1/R^2 and the paired bootstrap of per-item scores that evaluation tasks and `sapling bench` share.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sapling/export.hpp"

namespace sapling::stats {

// 1-based ranks, tied values sharing the mean of their ranks (scipy.stats.rankdata "average").
SAPLING_API std::vector<double> average_ranks(const std::vector<double>& values);
// Pearson correlation; NaN when n < 2 or either side is constant. Sizes must agree.
SAPLING_API double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman's rho = Pearson of the average ranks (scipy.stats.spearmanr).
SAPLING_API double spearman(const std::vector<double>& x, const std::vector<double>& y);
// 1 - SS_res / SS_tot over all entries (scikit-learn r2_score on one output); NaN when the target is constant.
SAPLING_API double r_squared(const std::vector<double>& predicted, const std::vector<double>& target);

// Binary confusion counts (doubles so that sums over many items never overflow and divisions are direct).
struct Confusion {
  double tp = 0, fp = 0, fn = 0, tn = 0;
  Confusion& operator+=(const Confusion& o) {
    tp += o.tp, fp += o.fp, fn += o.fn, tn += o.tn;
    return *this;
  }
};
// Matthews correlation; 0 when a margin is empty (scikit-learn's convention).
SAPLING_API double mcc(const Confusion& c);
// F1 of the positive class; 0 when there are no true and no predicted positives (scikit-learn's zero_division=0).
SAPLING_API double f1(const Confusion& c);

// Per-item scores from which a task's metric is recomputed on any resample of
// its test items (proteins, variants): the bench's bootstrap unit.
//   mean:     columns {value}           -> mean of the finite values
//   ratio:    columns {hits, total}     -> sum hits / sum total (pooled accuracy)
//   r2:       columns {ss_res, ss_tot}  -> 1 - sum ss_res / sum ss_tot
//   spearman: columns {predicted, true} -> Spearman over the items
//   mcc, f1:  columns {tp, fp, fn, tn}  -> the metric of the summed confusion
struct ItemScores {
  std::string kind;
  std::vector<std::vector<double>> columns;
  size_t size() const { return columns.empty() ? 0 : columns.front().size(); }
};
// The metric over items `pick` (indices, repeats allowed). Fails for an unknown kind or wrong column count.
SAPLING_API double evaluate(const ItemScores& items, const std::vector<size_t>& pick);
SAPLING_API double evaluate(const ItemScores& items);  // every item once

// {"kind": ..., "columns": [[...], ...]}, and back (errors name what is missing).
SAPLING_API nlohmann::json to_json(const ItemScores& items);
SAPLING_API ItemScores item_scores_from_json(const nlohmann::json& j);

// Δ = metric(model) - metric(baseline), averaged over the seeds both have, with
// a percentile 95% interval from a paired bootstrap: each replicate draws seeds
// with replacement (when there are several) and, within each drawn seed, test
// items with replacement, the same items for model and baseline.
struct DeltaInterval {
  double delta = 0, low = 0, high = 0;
  int64_t seeds = 0, replicates = 0;
  bool excludes_zero() const { return low > 0 || high < 0; }
};
// model[k] and baseline[k] are the same seed's scores on the same items (sizes
// must agree: fails otherwise). Deterministic for `seed`.
SAPLING_API DeltaInterval paired_bootstrap(const std::vector<ItemScores>& model, const std::vector<ItemScores>& baseline,
                                           int64_t replicates = 1000, uint64_t seed = 0);

}  // namespace sapling::stats
