// The real inputs of the conformance checks: chains read from structure files, and loss batches built from them.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "sapling/interfaces.hpp"

namespace sapling::conformance {

// The chains every check uses: the first chain of each structure file (observed residues, the view `prepare`
// stores), and every chain of every file (for components that read per-chain input files).
struct Fixtures {
  std::vector<std::filesystem::path> files;
  std::vector<ChainStructure> chains;
  std::vector<ChainStructure> file_chains;
  static Fixtures read(const std::vector<std::filesystem::path>& files);
};

// The structure files used when the examples name none: a small BM5 ligand, a PSICOV domain and a BM5 receptor
// chain with gaps (lengths and missing-residue handling differ), installed under share/sapling/conformance.
std::vector<std::filesystem::path> bundled_structures();

// A chain cut to its first `n` residues (0 gives the empty chain).
ChainStructure first_residues(const ChainStructure& chain, int64_t n);

// Sizes of the loss batches: 2 proteins in 12 tokens, pLM width 16, pGNN width 8, 33 tokens, 20 structure states.
inline constexpr int64_t kBatch = 2, kTokens = 12, kHidden = 16, kPgnn = 8, kVocab = 33, kStates = 20;

// A micro-batch of two proteins (the first `residues0` and `residues1` residues of the first two fixture chains,
// between BOS and EOS), every input a loss may read, and the fields `loss` declares.
struct LossBatch {
  EncoderOutput plm;
  LossInputs inputs;
};
LossBatch make_loss_batch(const Fixtures& fixtures, const std::string& loss, const std::vector<std::string>& fields,
                          int64_t residues0 = 10, int64_t residues1 = 6);

// Fills inputs.fields[f] for every field f in `declared` beyond the named LossInputs members, laid out as the
// trainer lays them out ([B, T, ...], NaN at specials, pad and residues without a value), row b from the first
// residues of proteins[b] at tokens 1..n. The one place that knows where each field comes from: a field it
// cannot provide is an error naming the loss and the field.
void fill_declared_fields(LossInputs& inputs, const std::string& loss, const std::vector<std::string>& declared,
                          const std::vector<ChainStructure>& proteins);

}  // namespace sapling::conformance
