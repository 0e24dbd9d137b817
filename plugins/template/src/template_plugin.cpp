// Template plugin: a residue selector that keeps residues whose loss reaches a threshold, and a loss that reads a data field.
// Copy this folder to start a plugin; CONTRIBUTING.md walks through each part.
#include "sapling/interfaces.hpp"  // for ResidueSelector, AlignmentLoss and their registries
#include "sapling/plugin.hpp"      // for SAPLING_PLUGIN

namespace {

// 1. Implement the interface. Keep state the factory needs in the constructor.
class LossThresholdSelector final : public sapling::ResidueSelector {
 public:
  explicit LossThresholdSelector(double threshold) : threshold_(threshold) {}

  torch::Tensor select(const torch::Tensor& loss, const torch::Tensor& /*reference_loss*/) const override {
    return loss.detach() >= threshold_;
  }
  bool needs_reference() const override { return false; }

 private:
  double threshold_;
};

// A loss that reads a per-residue field of the data: each residue's CA B-factor (pLDDT in predicted models),
// predicted from the pLM's last hidden state by a linear head. Its registration lists "bfactor" in `fields`,
// so the trainer fills LossInputs::fields["bfactor"], and `sapling recipe check` refuses data without it.
class BFactorLoss final : public sapling::AlignmentLoss {
 public:
  BFactorLoss(int64_t input_dim, double scale)
      : head_(register_module("head", torch::nn::Linear(input_dim, 1))), scale_(scale) {}

  sapling::LossTerms compute(const sapling::LossInputs& in) override {
    const torch::Tensor& bfactor = in.field(sapling::loss_fields::kBfactor);  // [B, T], NaN where none
    sapling::LossTerms terms;
    terms.index = in.residue_mask.logical_and(torch::isfinite(bfactor)).flatten().nonzero().squeeze(1);
    const auto hidden = in.plm->last_hidden.flatten(0, 1).index_select(0, terms.index).to(torch::kFloat32);
    const auto target = bfactor.flatten().index_select(0, terms.index).to(torch::kFloat32) / scale_;
    terms.per_residue["bfactor"] = (head_(hidden).squeeze(1) - target).pow(2);
    return terms;
  }
  bool selectable() const override { return true; }

 private:
  torch::nn::Linear head_;
  double scale_;
};

// 2. Declare the options a recipe may give (validated by `sapling recipe check`).
sapling::OptionSchema make_schema() {
  sapling::OptionSchema schema;
  schema.add("threshold", sapling::OptionType::Float)
      .default_value(0.0)
      .min(0.0)
      .doc("keep residues whose per-residue loss is at least this value");
  return schema;
}

sapling::OptionSchema make_loss_schema() {
  sapling::OptionSchema schema;
  schema.add("weight", sapling::OptionType::Float).default_value(1.0).min(0.0).doc("weight in the total loss");
  // 0 means "the trained model's hidden size": `sapling train` fills in input_dim, like every loss head's.
  schema.add("input_dim", sapling::OptionType::Int).default_value(int64_t{0}).min(0).doc("pLM hidden size (0 = the model's)");
  schema.add("scale", sapling::OptionType::Float).default_value(100.0).min(0.0, true).doc("targets are bfactor / scale");
  return schema;
}

}  // namespace

// 3. Register under a name. Recipes then say: [selector] component = "template_threshold",
//    [losses.bfactor] component = "template_bfactor".
SAPLING_PLUGIN("template", "Template plugin: a loss-threshold residue selector and a B-factor loss") {
  sapling::ResidueSelectorRegistry::instance().add(
      {"template_threshold", "keep residues whose loss >= threshold", make_schema(),
       [](const sapling::Options& options) -> std::shared_ptr<sapling::ResidueSelector> {
         return std::make_shared<LossThresholdSelector>(options.get_float("threshold"));
       }});
  sapling::Registration<sapling::AlignmentLoss> loss{
      "template_bfactor", "squared error of each residue's B-factor (pLDDT) / scale, predicted from the last hidden state",
      make_loss_schema(), [](const sapling::Options& options) -> std::shared_ptr<sapling::AlignmentLoss> {
        if (options.get_int("input_dim") < 1) sapling::fail("template_bfactor: input_dim must be set (sapling train fills in 0)");
        return std::make_shared<BFactorLoss>(options.get_int("input_dim"), options.get_float("scale"));
      }};
  loss.fields = {sapling::loss_fields::kBfactor};
  sapling::AlignmentLossRegistry::instance().add(std::move(loss));
}
