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
  int64_t shard_size = 1000;
  int threads = 1;  // file readers
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
  std::vector<std::string> failures;  // "FILE: reason" of skipped files and chains
  std::string summary;                // the human-readable lines `sapling prepare` prints
};

// Reads the files on settings.threads workers (in batches, so memory stays
// bounded), filters and splits the chains, tokenises and embeds them and
// writes the dataset (index.json last). A file or chain that fails is warned
// about and skipped unless settings.strict. Fails, writing nothing, when no
// chain passes the filters.
SAPLING_API PrepareReport prepare_dataset(const PrepareSettings& settings);

}  // namespace sapling
