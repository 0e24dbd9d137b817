// Template plugin: a residue selector that keeps residues whose loss reaches a threshold.
// Copy this folder to start a plugin; CONTRIBUTING.md walks through each part.
#include "sapling/interfaces.hpp"  // for ResidueSelector and its registry
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

// 2. Declare the options a recipe may give (validated by `sapling recipe check`).
sapling::OptionSchema make_schema() {
  sapling::OptionSchema schema;
  schema.add("threshold", sapling::OptionType::Float)
      .default_value(0.0)
      .min(0.0)
      .doc("keep residues whose per-residue loss is at least this value");
  return schema;
}

}  // namespace

// 3. Register under a name. Recipes then say: [selector] plugin = "template_threshold".
SAPLING_PLUGIN("template", "Template plugin: a loss-threshold residue selector") {
  sapling::ResidueSelectorRegistry::instance().add(
      {"template_threshold", "keep residues whose loss >= threshold", make_schema(),
       [](const sapling::Options& options) -> std::shared_ptr<sapling::ResidueSelector> {
         return std::make_shared<LossThresholdSelector>(options.get_float("threshold"));
       }});
}
