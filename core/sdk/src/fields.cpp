// One chain's per-residue field by name: built in (coords, bfactor) or a plugin's FieldProvider (fields.hpp).
#include "sapling/fields.hpp"

#include <cmath>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"

namespace sapling {

bool is_builtin_field(const std::string& name) { return name == loss_fields::kCoords || name == loss_fields::kBfactor; }

std::string field_source(const std::string& name) {
  if (is_builtin_field(name)) return "built in";
  const auto& providers = FieldProviderRegistry::instance();
  if (!providers.contains(name)) return "";
  return "field provider '" + name + "' of plugin '" + providers.find(name).plugin + "'";
}

torch::Tensor compute_field(const std::string& name, const ChainStructure& chain) {
  if (name == loss_fields::kCoords) return chain.coords.to(torch::kFloat32);
  if (name == loss_fields::kBfactor)
    return chain.bfactor.defined() ? chain.bfactor.to(torch::kFloat32)
                                   : torch::full({chain.length()}, std::nanf(""), torch::kFloat32);
  const auto& providers = FieldProviderRegistry::instance();
  if (!providers.contains(name))
    fail("no data source provides the per-residue field '", name, "' (neither built in nor a loaded ",
         FieldProvider::kind, "; `sapling plugins list` shows the providers)");
  const auto& entry = providers.find(name);
  std::shared_ptr<FieldProvider> provider;
  torch::Tensor values;
  try {
    provider = entry.factory(Options::defaults(entry.schema));
    values = provider->compute(chain);
  } catch (const std::exception&) {  // a provider's own errors and LibTorch's alike
    rethrow_with_context(field_source(name) + ", " + chain.label());
  }
  std::vector<int64_t> expected = {chain.length()};
  const auto residue = provider->residue_shape();
  expected.insert(expected.end(), residue.begin(), residue.end());
  if (!values.defined() || values.sizes() != torch::IntArrayRef(expected) || values.scalar_type() != provider->dtype())
    fail(field_source(name), " gave ", values.defined() ? values.toString() : std::string("an undefined tensor"), " ",
         values.defined() ? c10::str(values.sizes()) : std::string(), " for ", chain.label(), " (", chain.length(),
         " residues); it declares ", c10::toString(provider->dtype()), " ", c10::str(torch::IntArrayRef(expected)));
  return values.to(torch::kCPU);
}

}  // namespace sapling
