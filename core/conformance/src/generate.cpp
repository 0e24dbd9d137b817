// Writes the generated inputs of a component's examples: per-chain embeddings and token files of the fixture chains.
#include "generate.hpp"

#include <fstream>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/npy.hpp"

namespace sapling::conformance {

void generate_inputs(const Examples& examples, const std::string& kind, const std::string& name,
                     const Fixtures& fixtures, const std::filesystem::path& scratch, Options& options) {
  const auto* component = examples.component(kind, name);
  const auto* spec = component ? component->get_as<toml::table>("generate") : nullptr;
  if (!spec) return;
  const std::string where = examples.file().string() + ": [" + kind + "." + name + "] generate";
  const auto what = (*spec)["what"].value<std::string>();
  const auto option = (*spec)["option"].value<std::string>();
  if (!what || !option) fail(where, " needs what = \"embeddings_npy\" or \"tokens_fasta\" and option = NAME");
  std::filesystem::create_directories(scratch);
  if (*what == "embeddings_npy") {
    const int64_t dim = (*spec)["dim"].value_or(int64_t{8});
    torch::manual_seed(5);
    for (const auto& chain : fixtures.file_chains)
      save_npy(scratch / (chain.entry + "_" + chain.chain + ".npy"), torch::randn({chain.length(), dim}));
    options.set(*option, scratch.string());
  } else if (*what == "tokens_fasta") {
    const auto tokenizer_name = (*spec)["tokenizer"].value<std::string>();
    if (!tokenizer_name) fail(where, " needs tokenizer = NAME (a registered structure_tokenizer)");
    const auto& entry = StructureTokenizerRegistry::instance().find(*tokenizer_name);
    const auto tokenizer = entry.factory(Options::defaults(entry.schema));
    const auto file = scratch / ("tokens." + tokenizer->file_tag() + ".fasta");
    std::ofstream out(file);
    for (const auto& chain : fixtures.file_chains) {
      out << '>' << chain.entry << '_' << chain.chain << '\n';
      for (int64_t state : tokenizer->encode(chain)) out << tokenizer->symbol(state);
      out << '\n';
    }
    if (!out) fail(file.string(), ": cannot write");
    options.set(*option, file.string());
  } else {
    fail(where, ": unknown what = \"", *what, "\" (embeddings_npy or tokens_fasta)");
  }
}

}  // namespace sapling::conformance
