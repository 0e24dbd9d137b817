// Rank correlation, MCC/F1/R^2 and the paired bootstrap of per-item scores (plain doubles: no LibTorch here).
#include "sapling/internal/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "sapling/error.hpp"

namespace sapling::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_sizes(const std::vector<double>& x, const std::vector<double>& y, const char* what) {
  if (x.size() != y.size()) fail(what, ": ", x.size(), " values against ", y.size());
}

}  // namespace

std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && values[order[end]] == values[order[begin]]) ++end;
    // Ranks begin+1 .. end share their mean.
    const double shared = (static_cast<double>(begin + 1) + static_cast<double>(end)) / 2;
    for (size_t k = begin; k < end; ++k) ranks[order[k]] = shared;
    begin = end;
  }
  return ranks;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "pearson");
  const size_t n = x.size();
  if (n < 2) return kNaN;
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 0 || syy <= 0) return kNaN;
  return sxy / std::sqrt(sxx * syy);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "spearman");
  return pearson(average_ranks(x), average_ranks(y));
}

double r_squared(const std::vector<double>& predicted, const std::vector<double>& target) {
  check_sizes(predicted, target, "r_squared");
  if (target.empty()) return kNaN;
  const double mean = std::accumulate(target.begin(), target.end(), 0.0) / static_cast<double>(target.size());
  double res = 0, tot = 0;
  for (size_t i = 0; i < target.size(); ++i) {
    res += (target[i] - predicted[i]) * (target[i] - predicted[i]);
    tot += (target[i] - mean) * (target[i] - mean);
  }
  return tot > 0 ? 1 - res / tot : kNaN;
}

double mcc(const Confusion& c) {
  const double denominator = (c.tp + c.fp) * (c.tp + c.fn) * (c.tn + c.fp) * (c.tn + c.fn);
  return denominator > 0 ? (c.tp * c.tn - c.fp * c.fn) / std::sqrt(denominator) : 0.0;
}

double f1(const Confusion& c) {
  const double denominator = 2 * c.tp + c.fp + c.fn;
  return denominator > 0 ? 2 * c.tp / denominator : 0.0;
}

double evaluate(const ItemScores& items, const std::vector<size_t>& pick) {
  const auto& k = items.kind;
  const size_t want = k == "mean" ? 1 : k == "ratio" || k == "r2" || k == "spearman" ? 2 : k == "mcc" || k == "f1" ? 4 : 0;
  if (want == 0) fail("per-item scores: unknown kind '", k, "' (expected mean, ratio, r2, spearman, mcc or f1)");
  if (items.columns.size() != want) fail("per-item scores of kind '", k, "': expected ", want, " columns, got ", items.columns.size());
  for (const auto& column : items.columns)
    if (column.size() != items.size()) fail("per-item scores of kind '", k, "': columns of different lengths");
  for (size_t i : pick)
    if (i >= items.size()) fail("per-item scores: item ", i, " out of ", items.size());
  const auto& c = items.columns;
  if (k == "mean") {
    double sum = 0;
    size_t n = 0;
    for (size_t i : pick)
      if (std::isfinite(c[0][i])) sum += c[0][i], ++n;
    return n ? sum / static_cast<double>(n) : kNaN;
  }
  if (k == "ratio") {
    double hits = 0, total = 0;
    for (size_t i : pick) hits += c[0][i], total += c[1][i];
    return total > 0 ? hits / total : kNaN;
  }
  if (k == "r2") {
    double residual = 0, total = 0;
    for (size_t i : pick) residual += c[0][i], total += c[1][i];
    return total > 0 ? 1 - residual / total : kNaN;
  }
  if (k == "spearman") {
    std::vector<double> x, y;
    for (size_t i : pick) x.push_back(c[0][i]), y.push_back(c[1][i]);
    return spearman(x, y);
  }
  Confusion sum;
  for (size_t i : pick) sum += Confusion{c[0][i], c[1][i], c[2][i], c[3][i]};
  return k == "mcc" ? mcc(sum) : f1(sum);
}

double evaluate(const ItemScores& items) {
  std::vector<size_t> all(items.size());
  std::iota(all.begin(), all.end(), size_t{0});
  return evaluate(items, all);
}

nlohmann::json to_json(const ItemScores& items) { return {{"kind", items.kind}, {"columns", items.columns}}; }

ItemScores item_scores_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string() || !j.contains("columns") || !j["columns"].is_array())
    fail("per-item scores: expected {\"kind\": string, \"columns\": [[numbers], ...]}");
  ItemScores items;
  items.kind = j["kind"].get<std::string>();
  for (const auto& column : j["columns"]) {
    std::vector<double> values;
    // JSON has no NaN: tasks write null for it.
    for (const auto& v : column) values.push_back(v.is_number() ? v.get<double>() : kNaN);
    items.columns.push_back(std::move(values));
  }
  (void)evaluate(items, {});  // validates kind and shape
  return items;
}

DeltaInterval paired_bootstrap(const std::vector<ItemScores>& model, const std::vector<ItemScores>& baseline,
                               int64_t replicates, uint64_t seed) {
  if (model.size() != baseline.size() || model.empty())
    fail("paired bootstrap: ", model.size(), " seeds against ", baseline.size(), " (need the same, at least one)");
  for (size_t s = 0; s < model.size(); ++s)
    if (model[s].size() != baseline[s].size() || model[s].kind != baseline[s].kind)
      fail("paired bootstrap: seed ", s, ": ", model[s].size(), " ", model[s].kind, " items against ", baseline[s].size(),
           " ", baseline[s].kind, " (the tasks did not score the same items)");
  DeltaInterval out;
  out.seeds = static_cast<int64_t>(model.size());
  for (size_t s = 0; s < model.size(); ++s) out.delta += evaluate(model[s]) - evaluate(baseline[s]);
  out.delta /= static_cast<double>(model.size());
  std::mt19937_64 rng(seed);
  std::vector<double> deltas;
  std::vector<size_t> pick;
  for (int64_t r = 0; r < replicates; ++r) {
    double sum = 0;
    size_t used = 0;
    for (size_t k = 0; k < model.size(); ++k) {
      // Modulo draws, as seeded_permutation: reproducible on every platform.
      const size_t s = model.size() > 1 ? rng() % model.size() : 0;
      pick.resize(model[s].size());
      for (auto& i : pick) i = rng() % model[s].size();
      const double d = evaluate(model[s], pick) - evaluate(baseline[s], pick);
      if (std::isfinite(d)) sum += d, ++used;
    }
    if (used) deltas.push_back(sum / static_cast<double>(used));
  }
  out.replicates = static_cast<int64_t>(deltas.size());
  if (deltas.empty()) {
    out.low = out.high = kNaN;
    return out;
  }
  std::sort(deltas.begin(), deltas.end());
  // Percentile interval: the 2.5% and 97.5% order statistics (nearest rank).
  auto at = [&](double q) {
    const auto i = static_cast<size_t>(std::floor(q * static_cast<double>(deltas.size() - 1) + 0.5));
    return deltas[std::min(i, deltas.size() - 1)];
  };
  out.low = at(0.025);
  out.high = at(0.975);
  return out;
}

}  // namespace sapling::stats
