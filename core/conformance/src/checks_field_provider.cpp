// Checks of field providers: one value (of the declared dtype and shape) per residue of every sample chain,
// through compute_field as the trainer computes it, and the same values twice.
#include "checks.hpp"
#include "sapling/fields.hpp"
#include "sapling/interfaces.hpp"

namespace sapling::conformance {

namespace field_provider_impl {  // named, not anonymous: the unity build compiles these files as one unit

void computes_every_chain(Checker& c, const std::string& name, const RunContext& context) {
  const auto& entry = FieldProviderRegistry::instance().find(name);
  const auto provider = entry.factory(context.examples.options(FieldProvider::kind, name, entry.schema));
  for (const auto& chain : context.fixtures.chains) {
    Checker::Context in(c, "chain " + chain.label());
    torch::Tensor values;
    try {
      values = compute_field(name, chain);
    } catch (const Error& e) {
      c.failure(text("compute_field refused a real chain: ", e.what()));
      continue;
    }
    std::vector<int64_t> expected = {chain.length()};
    for (const auto d : provider->residue_shape()) expected.push_back(d);
    c.expect(values.sizes().vec() == expected, text("shape [L, residue_shape()...] = ", torch::IntArrayRef(expected),
                                                    ", got ", values.sizes()));
    c.expect(values.scalar_type() == provider->dtype(), text("dtype() ", provider->dtype(), ", got ", values.scalar_type()));
    if (values.is_floating_point())
      c.expect(!values.isinf().any().item<bool>(), "no infinite value (NaN marks a residue without one)");
    const auto again = compute_field(name, chain);
    c.expect(again.sizes() == values.sizes() && again.equal(values), "the same values when computed again");
  }
}

}  // namespace field_provider_impl

std::vector<Check> field_provider_checks() {
  using namespace field_provider_impl;
  return {{FieldProvider::kind, "computes [L, ...] of its dtype for every sample chain, deterministically",
           computes_every_chain}};
}

}  // namespace sapling::conformance
