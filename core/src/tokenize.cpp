// Structure files -> structure-token and residue FASTA files through any tokenizer's own view of a file.
#include "sapling/internal/tokenize.hpp"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/parallel.hpp"

namespace sapling {

namespace {

struct FileTokens {
  TokenizerFile read;
  std::vector<std::string> tokens;  // one line per chain
  std::string error;
};

// Letters (3Di) are written end to end; an alphabet with any longer symbol (VQ code numbers) is written
// space-separated throughout, so that "1 2" and "12" stay apart.
bool spaced_alphabet(const StructureTokenizer& tokenizer) {
  for (int64_t state = 0; state < tokenizer.num_states(); ++state)
    if (tokenizer.symbol(state).size() != 1) return true;
  return false;
}

std::string token_line(const StructureTokenizer& tokenizer, const std::vector<int64_t>& states, bool spaced) {
  std::string line;
  for (int64_t state : states) {
    if (spaced && !line.empty()) line += ' ';
    line += tokenizer.symbol(state);
  }
  return line;
}

}  // namespace

TokenizeReport tokenize_files(std::vector<std::filesystem::path> files, StructureTokenizer& tokenizer,
                              const std::filesystem::path& prefix, bool strict, int threads) {
  std::sort(files.begin(), files.end());
  TokenizeReport report;
  report.files = files.size();
  report.threads = tokenizer.thread_safe() ? std::max(1, std::min<int>(threads, static_cast<int>(files.size()))) : 1;
  const bool spaced = spaced_alphabet(tokenizer);
  const auto start = std::chrono::steady_clock::now();
  std::vector<FileTokens> results(files.size());
  std::atomic<bool> stop{false};
  parallel_for(
      0, files.size(), report.threads,
      [&](size_t k) {
        try {
          results[k].read = tokenizer.read_file(files[k]);
          for (const auto& chain : results[k].read.chains)
            results[k].tokens.push_back(token_line(tokenizer, tokenizer.encode(chain), spaced));
        } catch (const std::exception& e) {
          const std::string what = e.what();
          results[k].error = what.find(files[k].string()) == std::string::npos ? files[k].string() + ": " + what : what;
          if (strict) stop = true;
        }
      },
      &stop);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::ostringstream tokens_fasta, residues_fasta;
  for (size_t k = 0; k < files.size(); ++k) {
    const auto& result = results[k];
    if (!result.error.empty()) {
      if (strict) fail(result.error, " (--strict)");
      report.failures.push_back(result.error);
      continue;
    }
    ++report.files_read;
    report.skipped += result.read.skipped;
    if (report.skip_rule.empty()) report.skip_rule = result.read.skip_rule;
    for (size_t c = 0; c < result.read.chains.size(); ++c) {
      const auto& chain = result.read.chains[c];
      tokens_fasta << '>' << result.read.names[c] << '\n' << result.tokens[c] << '\n';
      residues_fasta << '>' << result.read.names[c] << '\n' << chain.sequence << '\n';
      ++report.chains;
      report.residues += chain.sequence.size();
    }
  }
  report.tokens_fasta = prefix.string() + "." + tokenizer.file_tag() + ".fasta";
  report.residues_fasta = prefix.string() + ".aa.fasta";
  write_file_atomic(report.tokens_fasta, tokens_fasta.str());
  write_file_atomic(report.residues_fasta, residues_fasta.str());
  return report;
}

}  // namespace sapling
