// FASTA parser: one pass, CRLF-tolerant, errors with file and line.
#include "sapling/fasta.hpp"

#include <cctype>
#include <unordered_map>

#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace sapling {

std::vector<FastaRecord> parse_fasta(const std::string& text, const std::string& name, const FastaOptions& options) {
  std::vector<FastaRecord> records;
  std::unordered_map<std::string, size_t> seen;
  size_t line_no = 0;
  size_t pos = 0;
  auto finish = [&]() {
    if (records.empty()) return;
    auto& r = records.back();
    if (r.sequence.empty() && !options.allow_empty_sequences)
      fail(name, ":", r.line, ": record '", r.label, "' has an empty sequence");
  };
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    size_t len = end - pos;
    if (len > 0 && text[pos + len - 1] == '\r') --len;
    const std::string_view line(text.data() + pos, len);
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line[0] == '>') {
      finish();
      FastaRecord r;
      r.line = line_no;
      r.description = std::string(line.substr(1));
      size_t a = 0;
      while (a < r.description.size() && std::isspace(static_cast<unsigned char>(r.description[a]))) ++a;
      size_t b = a;
      while (b < r.description.size() && !std::isspace(static_cast<unsigned char>(r.description[b]))) ++b;
      r.label = r.description.substr(a, b - a);
      if (r.label.empty()) fail(name, ":", line_no, ": empty FASTA header");
      if (!options.allow_duplicate_labels) {
        auto [it, inserted] = seen.emplace(r.label, line_no);
        if (!inserted)
          fail(name, ":", line_no, ": duplicate label '", r.label, "' (first seen on line ", it->second, ")");
      }
      records.push_back(std::move(r));
      continue;
    }
    if (line[0] == ';') continue;  // old-style comment
    if (records.empty()) fail(name, ":", line_no, ": sequence data before the first '>' header");
    auto& seq = records.back().sequence;
    for (size_t i = 0; i < line.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(line[i]);
      if (std::isspace(c)) continue;
      if (c == '*' && i + 1 == line.size()) continue;  // stop codon marker
      if (std::isalpha(c) || options.extra_characters.find(static_cast<char>(c)) != std::string::npos) {
        seq.push_back(static_cast<char>(std::toupper(c)));
        continue;
      }
      if (c == '<') {  // bracketed special token such as <mask>
        const size_t close = line.find('>', i);
        if (close != std::string_view::npos) {
          seq.append(line.substr(i, close - i + 1));
          i = close;
          continue;
        }
      }
      fail(name, ":", line_no, ":", i + 1, ": invalid character '", std::isprint(c) ? std::string(1, c) : "\\x" + std::to_string(c),
           "' in sequence of '", records.back().label, "'");
    }
  }
  finish();
  return records;
}

std::vector<FastaRecord> read_fasta(const std::filesystem::path& path, const FastaOptions& options) {
  return parse_fasta(read_maybe_gzipped(path), path.string(), options);
}

}  // namespace sapling
