// One source, seven test libraries (each case compiles a generated file that defines FIXTURE_<CASE>): good plugins, a name clash,
// a wrong API version, a wrong LibTorch version, a shared library that is not a plugin, and one with a failing component.
#include "sapling/plugin.hpp"

#if defined(FIXTURE_GOOD_A) || defined(FIXTURE_GOOD_B) || defined(FIXTURE_CLASH) || defined(FIXTURE_CONFORMANCE_MIXED)
#include "sapling/interfaces.hpp"

namespace {
class KeepAll final : public sapling::ResidueSelector {
 public:
  torch::Tensor select(const torch::Tensor& loss, const torch::Tensor&) const override {
    return torch::ones_like(loss, torch::kBool);
  }
  bool needs_reference() const override { return false; }
};

void register_selector(const char* name) {
  sapling::ResidueSelectorRegistry::instance().add(
      {name, "test fixture", sapling::OptionSchema{},
       [](const sapling::Options&) -> std::shared_ptr<sapling::ResidueSelector> { return std::make_shared<KeepAll>(); }});
}
}  // namespace
#else
// The refused fixtures never reach registration: they stay free of LibTorch headers.
static void register_selector(const char*) {}
#endif

#if defined(FIXTURE_GOOD_A)
SAPLING_PLUGIN("fixture_good_a", "test fixture A") { register_selector("fixture_keep_all_a"); }
#elif defined(FIXTURE_GOOD_B)
SAPLING_PLUGIN("fixture_good_b", "test fixture B") { register_selector("fixture_keep_all_b"); }
#elif defined(FIXTURE_CLASH)
// Registers a fresh name first, then one that fixture_good_a already owns: the loader must
// refuse the plugin and undo the first registration too.
SAPLING_PLUGIN("fixture_clash", "test fixture with a name clash") {
  register_selector("fixture_clash_only");
  register_selector("fixture_keep_all_a");
}
#elif defined(FIXTURE_CONFORMANCE_MIXED)
// For sapling-conformance: a good selector, one that breaks its contract (one flag too many), and a loss that
// reads the declared field "bfactor" (which the runner fills from a real structure).
namespace {
class OneTooMany final : public sapling::ResidueSelector {
 public:
  torch::Tensor select(const torch::Tensor& loss, const torch::Tensor&) const override {
    return torch::ones({loss.size(0) + 1}, torch::kBool);
  }
  bool needs_reference() const override { return false; }
};

class BFactorMean final : public sapling::AlignmentLoss {
 public:
  sapling::LossTerms compute(const sapling::LossInputs& in) override {
    const auto& bfactor = in.field(sapling::loss_fields::kBfactor);
    sapling::LossTerms terms;
    terms.index = in.residue_mask.logical_and(torch::isfinite(bfactor)).flatten().nonzero().squeeze(1);
    const auto hidden = in.plm->last_hidden.flatten(0, 1).index_select(0, terms.index).mean(1);
    terms.per_residue["bfactor"] = (hidden - bfactor.flatten().index_select(0, terms.index) / 100).pow(2);
    return terms;
  }
  bool selectable() const override { return true; }
};
}  // namespace

SAPLING_PLUGIN("fixture_conformance_mixed", "test fixture: one failing component among passing ones") {
  register_selector("fixture_keep_all_c");
  sapling::ResidueSelectorRegistry::instance().add(
      {"fixture_one_too_many", "test fixture: one keep flag too many", sapling::OptionSchema{},
       [](const sapling::Options&) -> std::shared_ptr<sapling::ResidueSelector> { return std::make_shared<OneTooMany>(); }});
  sapling::Registration<sapling::AlignmentLoss> loss{
      "fixture_bfactor_mean", "test fixture: reads the bfactor field", sapling::OptionSchema{},
      [](const sapling::Options&, const sapling::LossContext&) -> std::shared_ptr<sapling::AlignmentLoss> { return std::make_shared<BFactorMean>(); }};
  loss.fields = {sapling::loss_fields::kBfactor};
  sapling::AlignmentLossRegistry::instance().add(std::move(loss));
}
#elif defined(FIXTURE_WRONG_API)
extern "C" __attribute__((visibility("default"))) const SaplingPluginDescriptor* sapling_plugin_descriptor() {
  static const SaplingPluginDescriptor d{SAPLING_PLUGIN_API_VERSION + 100, TORCH_VERSION, "fixture_wrong_api",
                                         "built for another API", [] { register_selector("never"); }};
  return &d;
}
#elif defined(FIXTURE_WRONG_TORCH)
extern "C" __attribute__((visibility("default"))) const SaplingPluginDescriptor* sapling_plugin_descriptor() {
  static const SaplingPluginDescriptor d{SAPLING_PLUGIN_API_VERSION, "0.0.1", "fixture_wrong_torch",
                                         "built with another LibTorch", [] { register_selector("never"); }};
  return &d;
}
#elif defined(FIXTURE_NOT_A_PLUGIN)
extern "C" __attribute__((visibility("default"))) int some_unrelated_function() { return 42; }
#endif
