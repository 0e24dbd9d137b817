// Embedding extraction (the `esm-extract` workflow): FASTA -> per-residue / mean / BOS / contacts.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sapling/fasta.hpp"
#include "sapling/interfaces.hpp"

namespace sapling {

enum class LongSequencePolicy {
  Truncate,  // keep the first `truncation` residues, warn once per sequence
  Window,    // overlapping windows of `truncation` residues; overlaps averaged
  Error,     // refuse sequences over the limit
};

struct EmbedOptions {
  std::vector<std::string> include = {"mean"};  // per_tok, mean, bos, contacts
  std::vector<int64_t> layers = {-1};
  int64_t tokens_per_batch = 4096;  // padded tokens (specials included) per forward pass; packed: real tokens
  // Several sequences end to end per row (rows about as long as the batch's
  // longest sequence: choose_row_tokens), attention within each (packing.hpp). Not with contacts.
  bool packed = false;
  int64_t truncation = -1;          // residues; -1 = the model's limit
  LongSequencePolicy policy = LongSequencePolicy::Truncate;
  int64_t window_overlap = -1;      // residues shared by consecutive windows; -1 = truncation / 2
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
};

// Names -> tensors as written: "<label>/per_tok" [L, D], "<label>/mean" [D],
// "<label>/bos" [D], "<label>/contacts" [L, L]; layer suffix "@<layer>" when
// more than one layer is asked for. All float32 on CPU.
struct EmbedResult {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  int64_t residues = 0;    // residues embedded (after truncation)
  int64_t tokens = 0;      // token positions run through the model: residues, specials and padding
  int64_t truncated = 0;   // sequences over the limit
  int64_t limit = 0;       // the residue limit that was applied
  double seconds = 0;
};

// Sequences are sorted by length and packed into batches whose padded size
// stays within tokens_per_batch (fair-esm's rule), so padding is minimal.
SAPLING_API EmbedResult embed_sequences(SequenceEncoder& model, const std::vector<FastaRecord>& records,
                                        const EmbedOptions& options);

// Groups of record indices, each a batch (exposed for tests and benchmarks).
// Sorted by length; padded: (longest + extra) x count within the budget;
// packed: the sum of (length + extra) within it.
SAPLING_API std::vector<std::vector<size_t>> token_batches(const std::vector<int64_t>& lengths, int64_t tokens_per_batch,
                                                           int64_t extra_tokens_per_sequence, bool packed = false);

}  // namespace sapling
