// libFuzzer target: the downstream tasks' readers of user label files (FLIP CSV, FLIP per-residue label FASTA,
// DMS / ProteinGym variant CSV, mutant strings), with what an accepted file promises checked after each parse.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "downstream_support.hpp"
#include "sapling/error.hpp"

namespace fs = std::filesystem;
using namespace sapling::evaluation;

namespace {

// The readers take paths: one private folder per process, the same file names rewritten for every input.
const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    std::string pattern = (fs::temp_directory_path() / "sapling-fuzz-downstream-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    return fs::path(pattern);
  }();
  return dir;
}

fs::path write(const std::string& name, const std::string& text) {
  const auto path = scratch_dir() / name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// "<first position> <wild type>\n<rest>": the variant readers' wild type and numbering come from the input too.
bool split_header(const std::string& input, int64_t& first, std::string& wild_type, std::string& rest) {
  const auto newline = input.find('\n');
  if (newline == std::string::npos) return false;
  const std::string header = input.substr(0, newline);
  const auto space = header.find(' ');
  if (space == std::string::npos || space == 0 || space > 6) return false;
  first = std::strtoll(header.substr(0, space).c_str(), nullptr, 10);
  wild_type = header.substr(space + 1);
  rest = input.substr(newline + 1);
  return true;
}

void check_substitutions(const std::vector<Substitution>& mutations, const std::string& wild_type) {
  for (const auto& m : mutations)
    if (m.index < 0 || m.index >= static_cast<int64_t>(wild_type.size()) || wild_type[m.index] != m.from) std::abort();
}

void fitness_csv(const std::string& text) {
  const auto rows = read_fitness_csv(write("fitness.csv", text));
  bool train = false, test = false;
  for (const auto& r : rows) {
    if (r.sequence.empty() || !std::isfinite(r.target)) std::abort();
    (r.test ? test : train) = true;
  }
  if (!train || !test) std::abort();  // the reader promises both splits
}

// Sequences FASTA, a NUL byte, labels FASTA (FLIP's two-file layout).
void residue_labels(const std::string& text) {
  const auto nul = text.find('\0');
  if (nul == std::string::npos) return;
  LabelReport report;
  const auto chains = read_residue_labels(write("sequences.fasta", text.substr(0, nul)),
                                          write("labels.fasta", text.substr(nul + 1)), 0, 7, &report);
  for (const auto& c : chains) {
    if (c.labels.size() != c.sequence.size()) std::abort();
    for (const auto l : c.labels)
      if (l < 0 || l > 7) std::abort();
  }
  if (report.conflicting > report.repeated) std::abort();
}

void variant_csv(const std::string& text) {
  int64_t first = 0;
  std::string wild_type, csv;
  if (!split_header(text, first, wild_type, csv)) return;
  const auto table = read_variant_csv(write("variants.csv", csv), "mutant", "score", wild_type, first);
  for (const auto& row : table.rows) {
    if (!std::isfinite(row.score)) std::abort();
    check_substitutions(row.mutations, wild_type);
  }
}

void wild_type_from_table(const std::string& text) {
  const std::string wild_type = wild_type_from_variants(write("proteingym.csv", text), "mutant", 1);
  if (wild_type.empty()) std::abort();
}

void mutant(const std::string& text) {
  int64_t first = 0;
  std::string wild_type, mutant_text;
  if (!split_header(text, first, wild_type, mutant_text)) return;
  const auto mutations = parse_mutant(mutant_text, wild_type, first, "fuzz");
  check_substitutions(mutations, wild_type);
  if (apply_mutations(wild_type, mutations).size() != wild_type.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the reader, so one corpus serves all five.
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 5) {
      case 0: fitness_csv(rest); break;
      case 1: residue_labels(rest); break;
      case 2: variant_csv(rest); break;
      case 3: wild_type_from_table(rest); break;
      default: mutant(rest); break;
    }
  } catch (const sapling::Error&) {
    // A clean rejection naming the file and line is the expected outcome for most inputs.
  }
  return 0;
}
