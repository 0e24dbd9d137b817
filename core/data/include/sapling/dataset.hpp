// Structure dataset: a folder of safetensors shards (ragged per-residue arrays + offsets) and index.json.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/structure.hpp"

namespace sapling {

// Layout (format "sapling-structure-dataset", version 2):
//   DIR/index.json              written last; lists shards and every chain's metadata,
//                               each chain with "shard" (position in "shards") and "row"
//                               (its position within that shard)
//   DIR/shard-00000.safetensors about `shard_size` chains each, self-contained:
//     offsets    int64 [n+1]     residue range of chain k: offsets[k] .. offsets[k+1]
//     sequence   uint8 [R]       ASCII one-letter codes (X unknown)
//     coords     float32 [R,5,3] N, CA, C, O, CB; NaN where missing
//     observed   bool [R]        residue has a CA
//     bfactor    float32 [R]     CA B-factor (pLDDT for predicted models); NaN if absent
//     tokens     int16 [R]       optional structure tokens (mask state where unknown)
//     embeddings float16 [R,D]   optional per-residue pGNN embeddings
//   and header metadata "format", "version", "chains" (JSON array of that
//   shard's chain metadata, same fields as in index.json).
// R is the shard's residue count. Readable from Python with `safetensors` alone.
// A shard's "file" is relative to DIR and may name a subfolder: a dataset
// merged from `prepare --shard K/N` parts lists part-K-of-N/shard-*.safetensors
// without copying them. Rows that no chain names (chains replaced by
// `prepare --update`) are ignored. Version 1 (no "row": chains in shard
// order, every row listed) is still read.
// index.json also records the structure tokenizer (name, "tokenizer_options" as
// "key=value" strings, "token_states", "token_symbols", "token_mask_state").

inline constexpr const char* kDatasetFormat = "sapling-structure-dataset";
inline constexpr int kDatasetVersion = 2;

// Per-chain metadata stored with the arrays.
struct ChainMetadata {
  std::string entry;
  std::string chain;
  std::string method;
  double resolution = 0;  // 0 if unknown
  double r_free = 0;      // 0 if unknown
  std::string split;      // "train", "valid", ...
  std::string group;      // the unit the split was drawn by (complex id or entry)
  std::string source;     // input file the chain was read from
  int64_t length = 0;
  int64_t observed = 0;       // residues with a CA
  bool high_quality = false;  // X-ray and resolution <= 2.0 A
  // Position of the source file in the input list of the `prepare` run that
  // wrote the chain: merged parts list their chains in this order, as one
  // process would have. -1 when unknown.
  int64_t input_index = -1;
};

// The high-quality subset rule: X-ray diffraction at <= 2.0 A.
SAPLING_API bool is_high_quality(const std::string& method, double resolution);

// What a train/valid split is drawn by. Complex: the entry name up to the
// first '_' or '.', cut to the PDB id (4 characters, upper-cased) when it
// starts with one: BM5 "1AHW_r_u", "1AHW_l_b-matched" -> "1AHW", and
// "1IRAtrunc_r_u" -> "1IRA" (a truncated form of 1IRA); PSICOV "1a3a.chain"
// -> "1A3A". So bound and unbound forms never straddle the split.
enum class SplitBy { Complex, Entry };
SAPLING_API std::string split_group(const std::string& entry, SplitBy by);

// Deterministic split of one group: a 64-bit hash of (seed, group) mapped to
// u in [0, 1): "valid" below valid_fraction, then the reference model's
// held-out data below valid_fraction + reference_fraction ("reference_valid"
// for the first valid_fraction of that band, "reference_train" for the rest),
// else "train". The draw of a group does not depend on the other inputs, so
// adding files never moves existing groups, and reference_fraction = 0 gives
// the two-way split of earlier versions.
SAPLING_API std::string assign_split(const std::string& group, double valid_fraction, uint64_t seed,
                                     double reference_fraction = 0.0);

struct DatasetWriterOptions {
  int64_t shard_size = 1000;       // chains per shard (with flush_when_full = false: at least, see flush_if_full)
  std::string tokenizer;           // name of the structure tokenizer, "" if none
  std::vector<std::string> token_symbols;  // printable symbol per token state (their count is the vocabulary size)
  std::vector<std::string> tokenizer_options;  // the tokenizer's options as given, "key=value"
  int64_t token_mask_state = -1;
  // False: add() never flushes; the caller calls flush_if_full() where a shard
  // may end (prepare: between input files, so a journaled shard never holds
  // part of a file).
  bool flush_when_full = true;
  // Non-empty: keep a resume journal, DIR/prepare.journal, for these settings
  // (a JSON object as text). Each flushed shard is appended to it with the
  // caller's progress; a writer opened later on the same folder with equal
  // settings carries on after the journaled shards (resumed_progress()), and
  // with other settings fails naming the keys that differ. finish() removes it.
  std::string journal_settings;
  // Update an existing dataset: its shards and chains are kept, except chains
  // whose source file name (without folders) is in `replace_sources`; new
  // shards are added beside them. The old index stays valid until finish().
  bool update = false;
  std::vector<std::string> replace_sources;
};

// Writes a dataset folder. Shards are written atomically as they fill; the
// index is written last by finish(), so a folder with index.json is complete.
// Shards of an earlier dataset in the folder that the new index does not
// name are removed by finish().
class SAPLING_API StructureDatasetWriter {
 public:
  StructureDatasetWriter(const std::filesystem::path& dir, DatasetWriterOptions options = {});
  ~StructureDatasetWriter();
  StructureDatasetWriter(const StructureDatasetWriter&) = delete;
  StructureDatasetWriter& operator=(const StructureDatasetWriter&) = delete;

  // `tokens` [L] integer (or undefined), `embeddings` [L, D] (or undefined).
  // Either all chains have tokens (embeddings) or none.
  void add(const ChainStructure& chain, ChainMetadata metadata, const torch::Tensor& tokens = {},
           const torch::Tensor& embeddings = {});
  // Writes the shard being filled when it holds shard_size chains or more;
  // `progress_json` (a JSON value as text) goes into the journal with it.
  // True when a shard was written.
  bool flush_if_full(const std::string& progress_json = "null");
  // Progress texts of the shards an interrupted run journaled, in order
  // (empty when this writer started afresh).
  const std::vector<std::string>& resumed_progress() const;
  // Flushes the last shard and writes index.json. `extra_json` (a JSON object
  // as text, or "") is stored under "prepare" in the index (command line, counts).
  void finish(const std::string& extra_json = "");
  int64_t chains_written() const;  // carried-over chains of an update included

 private:
  struct State;
  std::unique_ptr<State> state_;
  void flush_shard(const std::string& progress_json = "null");
  void resume_from_journal();
  void carry_over_existing();
};

// Memory-mapped reader: no parsing per epoch, chain(i) returns views into the
// mapped shards (copy them before modifying).
class SAPLING_API StructureDataset {
 public:
  explicit StructureDataset(const std::filesystem::path& dir);
  ~StructureDataset();
  StructureDataset(StructureDataset&&) noexcept;
  StructureDataset& operator=(StructureDataset&&) noexcept;

  const std::filesystem::path& path() const;
  size_t size() const;
  const ChainMetadata& metadata(size_t i) const;
  ChainStructure chain(size_t i) const;
  bool has_tokens() const;
  torch::Tensor tokens(size_t i) const;  // [L] int16
  bool has_embeddings() const;
  torch::Tensor embeddings(size_t i) const;  // [L, D] float16
  int64_t embedding_dim() const;             // 0 without embeddings
  const std::string& tokenizer() const;      // "" without tokens
  const std::vector<std::string>& token_symbols() const;  // one per state: their count is the vocabulary size
  const std::vector<std::string>& tokenizer_options() const;  // "key=value" as given to prepare
  int64_t token_mask_state() const;          // the state stored for "unknown"; -1 without tokens
  // Position of chain i's shard in the index's "shards", and its row in that shard.
  std::pair<size_t, size_t> location(size_t i) const;
  // Indices of the chains in `split` ("train", "valid"), in dataset order.
  std::vector<size_t> indices(const std::string& split) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace sapling
