// FASTA reading with line-numbered errors (plain or gzipped files).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "sapling/export.hpp"

namespace sapling {

struct FastaRecord {
  std::string label;        // header up to the first whitespace
  std::string description;  // the whole header line without '>'
  std::string sequence;     // residues, whitespace removed, '*' stop removed
  size_t line = 0;          // 1-based line of the header
};

struct FastaOptions {
  bool allow_duplicate_labels = false;
  bool allow_empty_sequences = false;
  // Characters accepted in sequences besides letters ("-" gaps, "." ...).
  std::string extra_characters = "-.";
};

// Reads all records. Errors name the file and line: text before the first
// '>', an empty header, an empty sequence, a duplicate label, or a
// character that is neither a letter nor an accepted symbol. Handles CRLF.
SAPLING_API std::vector<FastaRecord> read_fasta(const std::filesystem::path& path, const FastaOptions& options = {});
SAPLING_API std::vector<FastaRecord> parse_fasta(const std::string& text, const std::string& name,
                                                 const FastaOptions& options = {});

}  // namespace sapling
