// Training data order and micro-batches: seeded epoch plans (token budget or fixed count), cropping, masking, targets.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <map>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/masking.hpp"
#include "sapling/structure_vocabulary.hpp"
#include "sapling/tokenizer.hpp"

namespace sapling {

// SplitMix64 of (seed, a, b): independent, reproducible streams per epoch and
// micro-batch, so any micro-batch can be rebuilt without replaying the ones
// before it (resume, and data-parallel ranks that each take a share).
SAPLING_API uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

// How the trainer groups proteins into micro-batches ([data] batching).
enum class Batching {
  Proteins,  // a fixed count of proteins per micro-batch, padded (the published batching)
  Tokens,    // a budget of padded tokens, proteins of similar lengths together
  Packed,    // a budget of real tokens, proteins end to end in rows (packing.hpp)
};

// "proteins" | "tokens" | "packed"; fails naming the accepted values.
SAPLING_API Batching parse_batching(const std::string& name);

struct BatchPlanSettings {
  Batching mode = Batching::Tokens;
  int64_t proteins_per_batch = 8;  // an upper bound with a token budget
  int64_t tokens_per_batch = 4096;  // Tokens: padded tokens; Packed: real tokens (specials included)
  int64_t sort_window = 64;        // Tokens: micro-batches' worth of proteins sorted by length together
  int64_t extra_tokens = 2;        // specials per sequence (BOS + EOS)
};

// The micro-batches of one epoch, as positions into `lengths` (residues after
// cropping). The proteins are shuffled with a generator seeded by (seed,
// epoch); with a token budget, windows of the shuffled order are sorted by
// length and packed greedily so that (longest + extra) x count stays within
// the budget (a protein longer than the budget gets a micro-batch of its
// own), and the micro-batches are shuffled again. Packed: the shuffled order
// is cut greedily so that the sum of (length + extra) stays within the
// budget; no sorting is needed, as packing wastes no tokens on padding.
SAPLING_API std::vector<std::vector<size_t>> plan_epoch(const std::vector<int64_t>& lengths,
                                                        const BatchPlanSettings& settings, uint64_t seed, int64_t epoch);

// One protein as the trainer feeds it.
struct TrainingExample {
  std::string sequence;       // one-letter residues
  torch::Tensor tokens;       // [L] integer structure states (mask state where unknown), or undefined
  torch::Tensor embeddings;   // [L, G] pGNN embeddings (zero rows where unknown), or undefined
  // [L] bool: the residue has coordinates, or undefined (all do). A residue
  // without them has no structure-token target (-100) rather than the
  // tokenizer's state for missing geometry (3Di 'D').
  torch::Tensor observed;
  // Further per-residue fields a loss reads ("coords" [L, 5, 3], "bfactor" [L], ...): first dimension L.
  std::map<std::string, torch::Tensor> fields;
};

struct StructureTokenLayout {
  StructureVocabulary vocabulary;  // the tokenizer's states and ids: state k's target is vocabulary.state_id(k)
  int64_t mask_state = -1;         // state meaning "unknown": target -100
};

// A collated micro-batch, every tensor on the CPU.
struct MicroBatch {
  torch::Tensor ids;               // [B, T] masked input
  torch::Tensor mask;              // [B, T] non-pad tokens
  torch::Tensor residue_mask;      // [B, T] real residues
  torch::Tensor mlm_labels;        // [B, T] -100 where not masked
  torch::Tensor structure_tokens;  // [B, T] vocabulary ids, -100 where unknown (undefined without tokens)
  torch::Tensor pgnn_embeddings;   // [B, T, G] float32, zeros at specials (undefined without embeddings)
  // TrainingExample::fields at token positions: [B, T, ...], NaN (floating) or 0 at specials and pad.
  std::map<std::string, torch::Tensor> fields;
  // Packed rows only (pack_micro_batch): [B, T] int64, the protein of each
  // token in collation order (0..proteins-1), -1 at pad. Undefined: row b is protein b.
  torch::Tensor segments;
  int64_t proteins = 0;
  int64_t residues = 0;  // real residues (after cropping)
};

// The protein of every token of a micro-batch, [B, T] int64, -1 at pad: the packed batch's own
// segments, or row b = protein b for a padded one (LossInputs::segments).
SAPLING_API torch::Tensor protein_segments(const MicroBatch& batch);

// Crops each protein longer than max_length to a window drawn from
// `generator`, tokenises, masks (mask_tokens with the same generator) and
// aligns the per-residue targets to token positions.
SAPLING_API MicroBatch collate(const std::vector<TrainingExample>& examples, const Tokenizer& tokenizer,
                               int64_t max_length, const MaskingOptions& masking, const StructureTokenLayout& layout,
                               torch::Generator& generator);

// The same micro-batch with its proteins packed into rows of `row_tokens`
// (0: choose_row_tokens, packing.hpp):
// the same ids, masks, labels and targets of every protein (masking drawn
// once, on the padded layout), so losses and selection see the same residues.
SAPLING_API MicroBatch pack_micro_batch(const MicroBatch& padded, int64_t row_tokens, int64_t pad_id);

}  // namespace sapling
