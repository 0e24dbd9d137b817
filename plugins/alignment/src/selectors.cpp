// Residue selectors: keep all, keep the top/bottom ratio by the model's own loss, or by excess over a reference.
#include <algorithm>
#include <cmath>

#include "alignment.hpp"
#include "sapling/error.hpp"

namespace sapling::alignment {

namespace {

// How many of n residues a ratio keeps. "floor" is the published top-k,
// k = int(ratio * n) with Python's truncation of the double product (so
// 0.8 of 4 keeps 3, and 0.8 of 1 keeps none); "ceil" rounds up, ignoring a
// product that overshoots an integer by float noise (0.7 * 10 keeps 7).
int64_t kept_count(double ratio, int64_t n, bool ceil) {
  const double exact = ratio * static_cast<double>(n);
  const auto k = ceil ? static_cast<int64_t>(std::ceil(exact - 1e-9)) : static_cast<int64_t>(exact);
  return std::clamp<int64_t>(k, 0, n);
}

// The k entries with the largest (or smallest) score; among equal scores the
// earlier residue wins (stable sort), so selection is deterministic.
torch::Tensor top_fraction(const torch::Tensor& score, double ratio, bool largest, bool ceil) {
  const auto values = score.detach();
  const int64_t n = values.size(0);
  auto keep = torch::zeros({n}, torch::TensorOptions().dtype(torch::kBool).device(values.device()));
  const int64_t k = kept_count(ratio, n, ceil);
  if (k == 0) return keep;
  const auto order = std::get<1>(values.sort(/*stable=*/true, /*dim=*/0, /*descending=*/largest));
  keep.index_fill_(0, order.slice(0, 0, k), true);
  return keep;
}

void require_vector(const torch::Tensor& t, const char* selector, const char* what) {
  if (!t.defined() || t.dim() != 1) fail(selector, " selector: ", what, " must be a 1-D per-residue loss vector");
}

class KeepAllSelector final : public ResidueSelector {
 public:
  torch::Tensor select(const torch::Tensor& loss, const torch::Tensor&) const override {
    require_vector(loss, "none", "loss");
    return torch::ones({loss.size(0)}, torch::TensorOptions().dtype(torch::kBool).device(loss.device()));
  }
  bool needs_reference() const override { return false; }
  bool keeps_everything() const override { return true; }
};

class OwnLossSelector final : public ResidueSelector {
 public:
  OwnLossSelector(double ratio, bool largest, bool ceil) : ratio_(ratio), largest_(largest), ceil_(ceil) {}
  torch::Tensor select(const torch::Tensor& loss, const torch::Tensor&) const override {
    require_vector(loss, "own_loss", "loss");
    return top_fraction(loss, ratio_, largest_, ceil_);
  }
  bool needs_reference() const override { return false; }

 private:
  double ratio_;
  bool largest_, ceil_;
};

class ExcessLossSelector final : public ResidueSelector {
 public:
  ExcessLossSelector(double ratio, bool ceil) : ratio_(ratio), ceil_(ceil) {}
  torch::Tensor select(const torch::Tensor& loss, const torch::Tensor& reference_loss) const override {
    require_vector(loss, "excess_loss", "loss");
    require_vector(reference_loss, "excess_loss", "reference loss (needs a [reference_model])");
    if (reference_loss.size(0) != loss.size(0))
      fail("excess_loss selector: reference loss has ", reference_loss.size(0), " residues, the model's has ",
           loss.size(0));
    return top_fraction(loss.detach() - reference_loss.detach().to(loss.device(), loss.scalar_type()), ratio_, true, ceil_);
  }
  bool needs_reference() const override { return true; }

 private:
  double ratio_;
  bool ceil_;
};

void add_ratio_and_rounding(OptionSchema& schema) {
  schema.add("ratio", OptionType::Float)
      .default_value(0.8)
      .min(0.0, true)
      .max(1.0)
      .doc("fraction of residues kept per micro-batch and loss term, in (0, 1]; 1 keeps all");
  schema.add("rounding", OptionType::String)
      .default_value(std::string("floor"))
      .one_of({"floor", "ceil"})
      .doc("kept count from ratio * N: floor = published int(ratio * N), ceil = round up");
}

}  // namespace

OptionSchema own_loss_schema() {
  OptionSchema schema;
  add_ratio_and_rounding(schema);
  schema.add("mode", OptionType::String)
      .default_value(std::string("largest"))
      .one_of({"largest", "smallest"})
      .doc("keep the residues with the largest or the smallest (detached) loss");
  return schema;
}

OptionSchema excess_loss_schema() {
  OptionSchema schema;
  add_ratio_and_rounding(schema);
  return schema;
}

std::shared_ptr<ResidueSelector> make_keep_all_selector(const Options&) { return std::make_shared<KeepAllSelector>(); }

std::shared_ptr<ResidueSelector> make_own_loss_selector(const Options& options) {
  return std::make_shared<OwnLossSelector>(options.get_float("ratio"), options.get_string("mode") == "largest",
                                           options.get_string("rounding") == "ceil");
}

std::shared_ptr<ResidueSelector> make_excess_loss_selector(const Options& options) {
  return std::make_shared<ExcessLossSelector>(options.get_float("ratio"), options.get_string("rounding") == "ceil");
}

}  // namespace sapling::alignment
