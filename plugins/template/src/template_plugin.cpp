// Template plugin: a loss-threshold residue selector, a loss reading a data field, and a field provider with its loss.
// Copy this folder to start a plugin; CONTRIBUTING.md walks through each part.
#include "sapling/interfaces.hpp"  // for ResidueSelector, AlignmentLoss, FieldProvider and their registries
#include "sapling/plugin.hpp"      // for SAPLING_PLUGIN

#include <cmath>

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

// A per-residue field the core does not know, computed by this plugin from each chain's structure: the
// contact number, how many other residues have their CA within `radius` of this residue's CA (a burial
// measure). Registered under the field's name, so any loss listing it in its fields gets it. Field names are
// global (as component names are), so the plugin's name prefixes it.
constexpr const char* kContactNumber = "template_contact_number";

class ContactNumberProvider final : public sapling::FieldProvider {
 public:
  explicit ContactNumberProvider(double radius) : radius_(radius) {}

  torch::Tensor compute(const sapling::ChainStructure& chain) const override {
    chain.require_backbone_coords();
    const auto ca = chain.coords.select(1, 1).to(torch::kFloat64);  // [L, 3], NaN where the residue has no CA
    const auto has_ca = torch::isfinite(ca).all(1);
    // NaN distances compare false, so residues without a CA are never counted; the diagonal is removed.
    const auto close = torch::cdist(ca, ca).le(radius_).logical_and(has_ca.unsqueeze(0));
    const auto count = close.sum(1).to(torch::kFloat32) - has_ca.to(torch::kFloat32);
    return torch::where(has_ca, count, torch::full_like(count, std::nanf("")));
  }
  // One float32 value per residue (the defaults of dtype() and residue_shape(), spelled out for the reader).
  torch::ScalarType dtype() const override { return torch::kFloat32; }
  std::vector<int64_t> residue_shape() const override { return {}; }

 private:
  double radius_;
};

// The loss reading it: each residue's contact number / scale, regressed from the last hidden state.
class ContactNumberLoss final : public sapling::AlignmentLoss {
 public:
  ContactNumberLoss(int64_t input_dim, double scale)
      : head_(register_module("head", torch::nn::Linear(input_dim, 1))), scale_(scale) {}

  sapling::LossTerms compute(const sapling::LossInputs& in) override {
    const torch::Tensor& counts = in.field(kContactNumber);  // [B, T], NaN where none
    sapling::LossTerms terms;
    terms.index = in.residue_mask.logical_and(torch::isfinite(counts)).flatten().nonzero().squeeze(1);
    const auto hidden = in.plm->last_hidden.flatten(0, 1).index_select(0, terms.index).to(torch::kFloat32);
    const auto target = counts.flatten().index_select(0, terms.index).to(torch::kFloat32) / scale_;
    terms.per_residue["burial"] = (head_(hidden).squeeze(1) - target).pow(2);
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

sapling::OptionSchema make_loss_schema(double scale, const char* target) {
  sapling::OptionSchema schema;
  schema.add("weight", sapling::OptionType::Float).default_value(1.0).min(0.0).doc("weight in the total loss");
  // 0 means "the trained model's hidden size": `sapling train` gives it in LossContext::model_width.
  schema.add("input_dim", sapling::OptionType::Int).default_value(int64_t{0}).min(0).doc("pLM hidden size (0 = the model's)");
  schema.add("scale", sapling::OptionType::Float)
      .default_value(scale)
      .min(0.0, true)
      .doc(std::string("targets are ") + target + " / scale");
  return schema;
}

sapling::OptionSchema make_provider_schema() {
  sapling::OptionSchema schema;
  schema.add("radius", sapling::OptionType::Float).default_value(10.0).min(0.0, true).doc("CA-CA distance in Angstrom");
  return schema;
}

// The head's width: the recipe's input_dim, or the trained model's (the factory's LossContext).
int64_t input_width(const sapling::Options& options, const sapling::LossContext& context, const char* loss) {
  const int64_t width = options.get_int("input_dim") > 0 ? options.get_int("input_dim") : context.model_width;
  if (width < 1) sapling::fail(loss, ": input_dim must be set (sapling train takes 0 from the model)");
  return width;
}

}  // namespace

// 3. Register under a name. Recipes then say: [selector] component = "template_threshold",
//    [losses.bfactor] component = "template_bfactor", [losses.burial] component = "template_burial".
SAPLING_PLUGIN("template", "Template plugin: a loss-threshold residue selector, a B-factor loss, a contact-number field and loss") {
  sapling::ResidueSelectorRegistry::instance().add(
      {"template_threshold", "keep residues whose loss >= threshold", make_schema(),
       [](const sapling::Options& options) -> std::shared_ptr<sapling::ResidueSelector> {
         return std::make_shared<LossThresholdSelector>(options.get_float("threshold"));
       }});
  // A loss factory gets the options and the run's LossContext (model width, pGNN width, structure vocabulary).
  sapling::Registration<sapling::AlignmentLoss> loss{
      "template_bfactor", "squared error of each residue's B-factor (pLDDT) / scale, predicted from the last hidden state",
      make_loss_schema(100.0, "bfactor"),
      [](const sapling::Options& options, const sapling::LossContext& context) -> std::shared_ptr<sapling::AlignmentLoss> {
        return std::make_shared<BFactorLoss>(input_width(options, context, "template_bfactor"), options.get_float("scale"));
      }};
  loss.fields = {sapling::loss_fields::kBfactor};
  sapling::AlignmentLossRegistry::instance().add(std::move(loss));

  // A field provider registers under the field's name; the loss below lists that name in its fields.
  sapling::FieldProviderRegistry::instance().add(
      {kContactNumber, "per residue: other residues with their CA within `radius` of its CA (NaN without a CA)",
       make_provider_schema(), [](const sapling::Options& options) -> std::shared_ptr<sapling::FieldProvider> {
         return std::make_shared<ContactNumberProvider>(options.get_float("radius"));
       }});
  sapling::Registration<sapling::AlignmentLoss> burial{
      "template_burial", "squared error of each residue's contact number / scale, predicted from the last hidden state",
      make_loss_schema(10.0, "the contact number"),
      [](const sapling::Options& options, const sapling::LossContext& context) -> std::shared_ptr<sapling::AlignmentLoss> {
        return std::make_shared<ContactNumberLoss>(input_width(options, context, "template_burial"),
                                                   options.get_float("scale"));
      }};
  burial.fields = {kContactNumber};
  sapling::AlignmentLossRegistry::instance().add(std::move(burial));
}
