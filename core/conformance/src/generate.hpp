// Input files a component reads, written by the runner where its examples ask ([KIND.NAME] generate).
#pragma once
#include <filesystem>
#include <string>

#include "examples.hpp"
#include "fixtures.hpp"

namespace sapling::conformance {

// Writes what [KIND.NAME] generate names into `scratch` and sets the option it names to it:
//   generate = { what = "embeddings_npy", option = "dir", dim = 8 }   seeded random [L, dim] ENTRY_CHAIN.npy per chain
//   generate = { what = "tokens_fasta", option = "file", tokenizer = "foldseek_3di" }   that tokenizer's states
// of every chain of the fixture files. Nothing when the component has no generate table.
void generate_inputs(const Examples& examples, const std::string& kind, const std::string& name,
                     const Fixtures& fixtures, const std::filesystem::path& scratch, Options& options);

}  // namespace sapling::conformance
