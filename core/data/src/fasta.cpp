// FASTA parser: one pass, CRLF-tolerant, errors with file and line.
#include "sapling/fasta.hpp"

#include <cctype>
#include <unordered_map>

#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace sapling {

namespace {

std::string printable(unsigned char c) {
  if (std::isprint(c)) return std::string(1, static_cast<char>(c));
  static const char* hex = "0123456789abcdef";
  return std::string("\\x") + hex[c >> 4] + hex[c & 15];
}

}  // namespace

std::vector<FastaRecord> parse_fasta(const std::string& text, const std::string& name, const FastaOptions& options,
                                     FastaReport* report) {
  std::vector<FastaRecord> records;
  std::unordered_map<std::string, size_t> seen;
  size_t line_no = 0;
  size_t pos = 0;
  // Lenient mode: lines up to the next header belong to a dropped record.
  bool skipping = false;
  // A bad record: strict -> the error; lenient -> dropped and reported.
  // `drop_last`: the record already in `records` is the bad one.
  auto reject = [&](const std::string& message, bool drop_last) {
    if (!options.skip_bad_records) throw Error(message);
    if (report) report->skipped.push_back(message);
    if (drop_last) {
      auto it = seen.find(records.back().label);
      if (it != seen.end() && it->second == records.back().line) seen.erase(it);
      records.pop_back();
    }
    skipping = true;
  };
  auto where = [&](size_t line) { return name + ":" + std::to_string(line) + ": "; };
  auto finish = [&]() {
    if (records.empty() || skipping) return;
    auto& r = records.back();
    if (r.sequence.empty() && !options.allow_empty_sequences)
      reject(where(r.line) + "record '" + r.label + "' has an empty sequence", true);
  };
  bool before_first_header = true;
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
      skipping = false;
      before_first_header = false;
      FastaRecord r;
      r.line = line_no;
      r.description = std::string(line.substr(1));
      size_t a = 0;
      while (a < r.description.size() && std::isspace(static_cast<unsigned char>(r.description[a]))) ++a;
      size_t b = a;
      while (b < r.description.size() && !std::isspace(static_cast<unsigned char>(r.description[b]))) ++b;
      r.label = r.description.substr(a, b - a);
      if (r.label.empty()) {
        reject(where(line_no) + "empty FASTA header", false);
        continue;
      }
      if (!options.allow_duplicate_labels) {
        auto [it, inserted] = seen.emplace(r.label, line_no);
        if (!inserted) {
          reject(where(line_no) + "duplicate label '" + r.label + "' (first seen on line " +
                 std::to_string(it->second) + ")", false);
          continue;
        }
      }
      records.push_back(std::move(r));
      continue;
    }
    if (line[0] == ';') continue;  // old-style comment
    if (skipping) continue;
    if (before_first_header) {
      reject(where(line_no) + "sequence data before the first '>' header", false);
      continue;
    }
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
      reject(name + ":" + std::to_string(line_no) + ":" + std::to_string(i + 1) + ": invalid character '" +
             printable(c) + "' in sequence of '" + records.back().label + "'", true);
      break;
    }
  }
  finish();
  return records;
}

std::vector<FastaRecord> read_fasta(const std::filesystem::path& path, const FastaOptions& options,
                                    FastaReport* report) {
  return parse_fasta(read_maybe_gzipped(path), path.string(), options, report);
}

}  // namespace sapling
