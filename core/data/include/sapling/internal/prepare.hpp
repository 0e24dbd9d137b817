// `sapling prepare` as a library call: structure files -> filtered, split structure dataset with optional tokens and pGNN embeddings.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sapling/dataset.hpp"
#include "sapling/export.hpp"
#include "sapling/interfaces.hpp"

namespace sapling {

struct PrepareSettings {
  std::vector<std::filesystem::path> files;  // structure files (find_structure_files)
  std::filesystem::path out;                 // dataset folder
  // Filters, judged on the deposited chain.
  int64_t min_length = 1;
  double max_resolution = 0;  // > 0: drop chains above it or with unknown resolution
  double max_missing = 1.0;   // largest fraction of residues without a CA
  std::vector<std::string> chains;  // author chains to keep ("A" also keeps its TER parts "A_2", ...); empty: all
  bool high_quality_only = false;
  // Splits.
  double valid_fraction = 0.1;
  double reference_fraction = 0.0;
  uint64_t seed = 0;
  SplitBy split_by = SplitBy::Complex;
  // Stored view: observed residues (published) or the full SEQRES sequence.
  bool full_sequence = false;
  bool strict = false;  // stop at the first unreadable file or failing chain instead of reporting and skipping it
  int64_t shard_size = 1000;  // chains per shard file (at least: a file's chains never straddle two)
  int threads = 1;  // file readers (and tokenisers, for a thread-safe tokenizer)
  // One worker of many: this process takes the complexes whose hash falls in
  // part `part_index` of `part_count` (0-based) and writes a complete dataset
  // of them to `out`; merge_dataset_parts() joins the parts.
  int part_index = 0, part_count = 1;
  // Add the inputs to the dataset in `out`: files it already holds (same file
  // name, size and modification time) are skipped, changed ones replace their
  // chains, new ones are added; every complex keeps its split.
  bool update = false;
  // Discard the journal of an interrupted run in `out` instead of resuming it.
  bool restart = false;
  int64_t embed_batch_residues = 8192;  // residues per encoder call (several chains at once)
  // Optional per-residue outputs, built by the caller from the registries.
  std::shared_ptr<StructureTokenizer> tokenizer;
  std::string tokenizer_name;
  std::vector<std::string> tokenizer_options;  // "key=value", stored in the index
  std::shared_ptr<StructureEncoder> pgnn;
  std::string pgnn_name;
  std::string pgnn_info_json;  // JSON object stored under prepare.pgnn in the index
  std::vector<std::string> command;  // the command line, stored in the index
};

struct PrepareReport {
  int64_t chains_kept = 0;
  int64_t files_skipped_unchanged = 0;  // --update: inputs the dataset already holds
  std::vector<std::string> failures;  // "FILE: reason" of skipped files and chains
  std::string summary;                // the human-readable lines `sapling prepare` prints
};

// Reads the files on settings.threads workers (in batches, so memory stays
// bounded; the next batch is read while the encoder runs), filters and splits
// the chains, tokenises and embeds them and writes the dataset (index.json
// last). A file or chain that fails is warned about and skipped unless
// settings.strict. Fails, writing nothing, when no chain passes the filters.
// Resumable: shards are journaled as they are written (DIR/prepare.journal),
// and the same call on the same folder after a kill carries on after the last
// journaled shard, giving the dataset an uninterrupted run gives.
SAPLING_API PrepareReport prepare_dataset(const PrepareSettings& settings);

// "part-00002-of-00008": the folder of part K of N inside the output folder.
SAPLING_API std::string dataset_part_name(int part_index, int part_count);

// Joins the complete parts DIR/part-K-of-N (K = 0..N-1) into one dataset in
// DIR: an index naming the parts' shards where they are (no data is copied),
// chains in the order one process would have written them, counts summed.
// Fails naming the missing or unfinished parts, or parts prepared with other
// settings or inputs. Returns the summary lines `sapling prepare --merge` prints.
SAPLING_API std::string merge_dataset_parts(const std::filesystem::path& dir);

}  // namespace sapling
