// Residue selector checks: a keep mask per residue, determinism, the reference contract, tiny inputs.
#include "checks.hpp"
#include "sapling/interfaces.hpp"

namespace sapling::conformance {

namespace selector_impl {  // named, not anonymous: the unity build compiles these files as one unit

void keep_flags(Checker& c, const std::string& name, const RunContext& context) {
  torch::manual_seed(3);
  const auto loss = torch::rand({50}) * 4;
  const auto reference = torch::rand({50}) * 4;
  const auto selector = build_component<ResidueSelector>(name, context);
  const auto ref = selector->needs_reference() ? reference : torch::Tensor();
  const auto keep = selector->select(loss, ref);
  if (!c.expect(keep.dim() == 1, text("select() is [N], got ", keep.sizes()))) return;
  c.expect(keep.size(0) == loss.size(0), text("one flag per residue, got ", keep.size(0)));
  c.expect(keep.scalar_type() == torch::kBool, "bool flags");
  c.expect(torch::equal(selector->select(loss, ref), keep), "deterministic");
  if (selector->keeps_everything()) c.expect(keep.all().item<bool>(), "keeps_everything() keeps every residue");
  for (int64_t n : {0, 1}) {
    Checker::Context in(c, text(n, " residue(s)"));
    std::string message;
    torch::Tensor small;
    c.expect(
        succeeds_or_reports(
            [&] { small = selector->select(loss.slice(0, 0, n), ref.defined() ? ref.slice(0, 0, n) : ref); }, &message),
        "returns or throws sapling::Error, not: " + message);
    if (small.defined()) c.expect(small.size(0) == n, text("one flag per residue, got ", small.size(0)));
  }
}

void reference(Checker& c, const std::string& name, const RunContext& context) {
  const auto selector = build_component<ResidueSelector>(name, context);
  if (!selector->needs_reference()) {
    c.skip("needs no reference");
    return;
  }
  bool reported = false;
  try {
    selector->select(torch::rand({8}), torch::Tensor());
  } catch (const Error&) {
    reported = true;
  } catch (const std::exception& e) {
    c.failure(text("without a reference it threw a non-sapling::Error: ", e.what()));
    return;
  }
  c.expect(reported, "select() without a reference throws sapling::Error");
}

}  // namespace selector_impl

std::vector<Check> selector_checks() {
  using namespace selector_impl;
  const std::string kind = ResidueSelector::kind;
  return {{kind, "one keep flag per residue, deterministically", keep_flags},
          {kind, "a selector that needs a reference says so when none is given", reference}};
}

}  // namespace sapling::conformance
