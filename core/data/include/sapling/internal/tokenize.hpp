// `sapling tokens` as a library call: structure files -> one structure-token FASTA and one residue FASTA.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/interfaces.hpp"

namespace sapling {

struct TokenizeReport {
  size_t files = 0, files_read = 0, chains = 0, residues = 0, skipped = 0;
  std::string skip_rule;                  // what `skipped` counts (the tokenizer's rule)
  std::vector<std::string> failures;      // "FILE: reason", one per unreadable file
  std::filesystem::path tokens_fasta, residues_fasta;
  double seconds = 0;
  int threads = 1;
};

// Reads each file through tokenizer.read_file() (files sorted by path, as
// Foldseek createdb orders them), encodes every chain and writes
// PREFIX.<tokenizer.file_tag()>.fasta and PREFIX.aa.fasta atomically.
// An alphabet with any multi-character symbol (VQ code numbers) is written space-separated. A file that
// cannot be read is reported and skipped, or fails the call when `strict`.
// Runs on `threads` workers when the tokenizer is thread-safe.
SAPLING_API TokenizeReport tokenize_files(std::vector<std::filesystem::path> files, StructureTokenizer& tokenizer,
                                          const std::filesystem::path& prefix, bool strict, int threads);

}  // namespace sapling
