// Out-of-line anchors for the interfaces (one vtable/typeinfo copy) and the registry instances.
#include "sapling/interfaces.hpp"

#include "sapling/files.hpp"
#include "sapling/structure_io.hpp"

namespace sapling {

SequenceEncoder::~SequenceEncoder() = default;
StructureEncoder::~StructureEncoder() = default;

std::vector<torch::Tensor> StructureEncoder::embed_batch(const std::vector<ChainStructure>& chains) {
  std::vector<torch::Tensor> out;
  out.reserve(chains.size());
  for (const auto& chain : chains) out.push_back(embed(chain));
  return out;
}
StructureTokenizer::~StructureTokenizer() = default;
TrainableTokenizer::~TrainableTokenizer() = default;
AlignmentLoss::~AlignmentLoss() = default;
ResidueSelector::~ResidueSelector() = default;
FieldProvider::~FieldProvider() = default;

void SequenceEncoder::save_tokenizer(const std::filesystem::path&) const {}

TokenizerFile StructureTokenizer::read_file(const std::filesystem::path& file) const {
  StructureReadOptions options;
  options.use_full_sequence = false;  // the residues in the file
  const auto chains = read_structure_from_memory(read_maybe_gzipped(file), file.filename().string(), options);
  const std::string entry = structure_entry_name(file);
  TokenizerFile out;
  out.skip_rule = "chains without a residue that has a CA";
  for (const auto& chain : chains) {
    ChainStructure observed = observed_residues(chain);
    if (observed.length() == 0) {
      ++out.skipped;
      continue;
    }
    out.names.push_back(chains.size() > 1 ? entry + "_" + chain.chain : entry);
    out.chains.push_back(std::move(observed));
  }
  return out;
}

SequenceEncoder::ParameterGroups SequenceEncoder::parameter_groups() {
  // PyTorch habit: no weight decay on biases and normalisation weights (1-D).
  ParameterGroups groups;
  for (const auto& p : named_parameters()) {
    if (!p.value().requires_grad()) continue;
    if (p.value().dim() < 2)
      groups.no_decay.push_back(p.value());
    else
      groups.decay.push_back(p.value());
  }
  return groups;
}

std::vector<RegistrationLog::Item>& RegistrationLog::items() {
  static std::vector<Item> items;
  return items;
}

std::string& RegistrationLog::current_plugin() {
  static std::string name = "core";
  return name;
}

template <typename Interface>
Registry<Interface>& Registry<Interface>::instance() {
  static Registry registry;
  return registry;
}

template class Registry<SequenceEncoder>;
template class Registry<StructureEncoder>;
template class Registry<StructureTokenizer>;
template class Registry<AlignmentLoss>;
template class Registry<ResidueSelector>;
template class Registry<FieldProvider>;

}  // namespace sapling
