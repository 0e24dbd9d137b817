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
  // Lenient mode for large training sets (one bad record in 160k should not
  // stop a run): a record that would be an error (empty header, empty
  // sequence, duplicate label, invalid character, text before the first
  // header) is dropped and its "file:line: reason" added to the report.
  // Default strict: the first bad record is a sapling::Error.
  bool skip_bad_records = false;
};

// What lenient reading dropped; one "file:line: reason" per skipped record.
struct FastaReport {
  std::vector<std::string> skipped;
};

// Reads all records. Errors name the file and line: text before the first
// '>', an empty header, an empty sequence, a duplicate label, or a
// character that is neither a letter nor an accepted symbol. Handles CRLF.
// With skip_bad_records, bad records go to `report` (when given) instead of failing.
SAPLING_API std::vector<FastaRecord> read_fasta(const std::filesystem::path& path, const FastaOptions& options = {},
                                                FastaReport* report = nullptr);
SAPLING_API std::vector<FastaRecord> parse_fasta(const std::string& text, const std::string& name,
                                                 const FastaOptions& options = {}, FastaReport* report = nullptr);

}  // namespace sapling
