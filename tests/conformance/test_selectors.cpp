// Conformance of every registered residue selector: a keep mask per residue, determinism, the reference contract, tiny inputs.
#include <catch2/catch.hpp>

#include "conformance_support.hpp"
#include "sapling/interfaces.hpp"

namespace {
namespace t = sapling::test;

std::shared_ptr<sapling::ResidueSelector> build_selector(const std::string& name) {
  return t::build_for_conformance<sapling::ResidueSelector>(name, {}, t::temp_dir("conformance-selector-" + name));
}
}  // namespace

TEST_CASE("conformance: every selector returns one keep flag per residue, deterministically", "[conformance]") {
  t::load_build_plugins();
  const auto names = sapling::ResidueSelectorRegistry::instance().names();
  REQUIRE_FALSE(names.empty());
  torch::manual_seed(3);
  const auto loss = torch::rand({50}) * 4;
  const auto reference = torch::rand({50}) * 4;
  for (const auto& name : names) {
    INFO("residue_selector '" << name << "'");
    const auto selector = build_selector(name);
    const auto ref = selector->needs_reference() ? reference : torch::Tensor();
    const auto keep = selector->select(loss, ref);
    REQUIRE(keep.dim() == 1);
    CHECK(keep.size(0) == loss.size(0));
    CHECK(keep.scalar_type() == torch::kBool);
    CHECK(torch::equal(selector->select(loss, ref), keep));
    if (selector->keeps_everything()) CHECK(keep.all().item<bool>());
    for (int64_t n : {0, 1}) {
      std::string message;
      torch::Tensor small;
      CHECK(t::succeeds_or_reports(
          [&] { small = selector->select(loss.slice(0, 0, n), ref.defined() ? ref.slice(0, 0, n) : ref); }, &message));
      INFO(n << " residue(s): " << (small.defined() ? "returned" : "error: " + message));
      if (small.defined()) CHECK(small.size(0) == n);
    }
  }
}

TEST_CASE("conformance: a selector that needs a reference says so when none is given", "[conformance]") {
  t::load_build_plugins();
  for (const auto& name : sapling::ResidueSelectorRegistry::instance().names()) {
    INFO("residue_selector '" << name << "'");
    const auto selector = build_selector(name);
    if (!selector->needs_reference()) continue;
    CHECK_THROWS_AS(selector->select(torch::rand({8}), torch::Tensor()), sapling::Error);
  }
}
