// Masked-language-model corruption (see masking.hpp): Bernoulli selection, then <mask> / random / keep.
#include "sapling/masking.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include "sapling/error.hpp"

namespace sapling {

torch::Tensor real_residue_mask(const torch::Tensor& ids, const torch::Tensor& mask, const Tokenizer& tokenizer,
                                bool include_unknown) {
  std::vector<int64_t> residue_ids;
  for (int64_t id = 0; id < tokenizer.size(); ++id)
    if (tokenizer.is_residue(id) || (include_unknown && id == tokenizer.unk_id())) residue_ids.push_back(id);
  auto is_residue = torch::isin(ids, torch::tensor(residue_ids, torch::kInt64).to(ids.device()));
  return mask.defined() ? is_residue.logical_and(mask.to(torch::kBool)) : is_residue;
}

torch::Generator make_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

MaskedTokens mask_tokens(const torch::Tensor& ids, const torch::Tensor& residue_mask, const Tokenizer& tokenizer,
                         const MaskingOptions& options, torch::Generator& generator) {
  auto in_unit = [](double v) { return v >= 0.0 && v <= 1.0; };
  if (!in_unit(options.probability) || !in_unit(options.replace_with_mask) || !in_unit(options.replace_with_random))
    fail("masking: probability and replacement fractions must lie in [0, 1] (got ", options.probability, ", ",
         options.replace_with_mask, ", ", options.replace_with_random, ")");
  if (options.replace_with_mask + options.replace_with_random > 1.0 + 1e-12)
    fail("masking: replace_with_mask + replace_with_random must not exceed 1 (got ",
         options.replace_with_mask + options.replace_with_random, ")");
  if (ids.sizes() != residue_mask.sizes())
    fail("masking: ids ", ids.sizes(), " and residue mask ", residue_mask.sizes(), " differ in shape");

  // Draws on the CPU (the generator is a CPU one), results moved back to ids' device.
  const auto cpu_ids = ids.to(torch::kCPU, torch::kInt64);
  const auto candidates = residue_mask.to(torch::kCPU, torch::kBool);
  const auto cpu_f64 = torch::TensorOptions().dtype(torch::kFloat64);

  // One uniform draw decides selection, a second how a selected residue is replaced.
  const auto select_draw = torch::rand(cpu_ids.sizes(), generator, cpu_f64);
  const auto how_draw = torch::rand(cpu_ids.sizes(), generator, cpu_f64);
  const auto selected = candidates.logical_and(select_draw < options.probability);
  const auto to_mask = selected.logical_and(how_draw < options.replace_with_mask);
  const auto to_random = selected.logical_and(how_draw >= options.replace_with_mask)
                             .logical_and(how_draw < options.replace_with_mask + options.replace_with_random);

  auto masked = cpu_ids.clone();
  masked.masked_fill_(to_mask, tokenizer.mask_id());
  if (options.replace_with_random > 0.0) {
    const auto standard = tokenizer.standard_residue_ids();
    if (standard.empty()) fail("masking: the tokenizer has no standard residues to draw random replacements from");
    const auto pick = torch::randint(static_cast<int64_t>(standard.size()), cpu_ids.sizes(), generator,
                                     torch::TensorOptions().dtype(torch::kInt64));
    const auto random_ids = torch::tensor(standard, torch::kInt64).index({pick});
    masked = torch::where(to_random, random_ids, masked);
  }
  auto labels = torch::where(selected, cpu_ids, torch::full_like(cpu_ids, kIgnoreLabel));
  return {masked.to(ids.device()), labels.to(ids.device())};
}

}  // namespace sapling
