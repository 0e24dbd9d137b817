// Parsing of precomputed token files: letters or integer codes, with file:line:column errors.
#include "token_file.hpp"

#include <cctype>

#include "sapling/error.hpp"
#include "sapling/files.hpp"  // for read_maybe_gzipped

namespace sapling::precomputed {

namespace {

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// A symbol as it may be printed in a message (control bytes as their code).
std::string printable(const std::string& symbol) {
  std::string out;
  for (char c : symbol) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isprint(u)) out += c;
    else out += "\\x" + std::string(1, "0123456789abcdef"[u >> 4]) + std::string(1, "0123456789abcdef"[u & 15]);
  }
  return out;
}

}  // namespace

TokenAlphabet::TokenAlphabet(std::string letters, int64_t codes, std::string extra)
    : letters_(std::move(letters)), codes_(codes), extra_(std::move(extra)) {
  by_char_.fill(-1);
  if (codes_mode()) {
    // A state index must fit the uint16 records (and the dataset's int16 tokens).
    if (codes_ > 32767 - 1) fail("precomputed tokens: codes = ", codes_, " is above the largest supported, 32766");
    if (!extra_.empty() && TokenAlphabet("", codes_, "").state_of(extra_) >= 0)
      fail("precomputed tokens: the extra mask symbol '", extra_, "' is also a code");
    return;
  }
  if (letters_.empty()) fail("precomputed tokens: the alphabet is empty (set 'alphabet' or 'codes')");
  for (size_t i = 0; i < letters_.size(); ++i) {
    const auto c = static_cast<unsigned char>(letters_[i]);
    if (is_space(letters_[i]) || c == '>' || !std::isprint(c))
      fail("precomputed tokens: alphabet character ", i + 1, " '", printable(std::string(1, letters_[i])),
           "' cannot be a symbol (whitespace, '>' and control characters are not)");
    if (by_char_[c] >= 0) fail("precomputed tokens: alphabet '", letters_, "' holds '", letters_[i], "' twice");
    by_char_[c] = static_cast<int32_t>(i);
  }
  if (!extra_.empty()) {
    const auto c = static_cast<unsigned char>(extra_[0]);
    if (extra_.size() != 1 || by_char_[c] >= 0)
      fail("precomputed tokens: the extra mask symbol '", extra_, "' must be one character not in the alphabet");
    by_char_[c] = static_cast<int32_t>(letters_.size());
  }
}

int64_t TokenAlphabet::num_states() const {
  return (codes_mode() ? codes_ : static_cast<int64_t>(letters_.size())) + (extra_.empty() ? 0 : 1);
}

std::string TokenAlphabet::symbol(int64_t state) const {
  if (state < 0 || state >= num_states())
    fail("precomputed tokens: state ", state, " is not in 0..", num_states() - 1);
  const int64_t base = num_states() - (extra_.empty() ? 0 : 1);
  if (state == base) return extra_;
  return codes_mode() ? std::to_string(state) : std::string(1, letters_[static_cast<size_t>(state)]);
}

int64_t TokenAlphabet::state_of(const std::string& symbol) const {
  if (symbol.empty()) return -1;
  if (!codes_mode()) return symbol.size() == 1 ? by_char_[static_cast<unsigned char>(symbol[0])] : -1;
  if (!extra_.empty() && symbol == extra_) return codes_;
  if (symbol.size() > 9) return -1;  // no int overflow below; far out of range anyway
  int64_t value = 0;
  for (char c : symbol) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    value = value * 10 + (c - '0');
  }
  return value < codes_ ? value : -1;
}

std::string TokenAlphabet::describe() const {
  std::string text = codes_mode() ? "integer codes 0.." + std::to_string(codes_ - 1) : "alphabet '" + letters_ + "'";
  if (!extra_.empty()) text += " and the mask symbol '" + extra_ + "'";
  return text;
}

TokenFile TokenFile::read(const std::filesystem::path& file, const TokenAlphabet& alphabet) {
  if (!std::filesystem::is_regular_file(file)) fail("precomputed tokens: token file '", file.string(), "' does not exist");
  return parse(read_maybe_gzipped(file), file.string(), alphabet);
}

TokenFile TokenFile::parse(const std::string& text, const std::string& name, const TokenAlphabet& alphabet) {
  TokenFile out;
  out.name_ = name;
  TokenRecord* current = nullptr;
  std::string current_key;
  auto close = [&] {
    if (current && current->states.empty())
      fail(name, ":", current->line, ": '", current_key, "' has no tokens");
  };
  size_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (!line.empty() && line[0] == '>') {
      close();
      size_t key_end = 1;
      while (key_end < line.size() && !is_space(line[key_end])) ++key_end;
      current_key = line.substr(1, key_end - 1);
      if (current_key.empty()) fail(name, ":", line_number, ": empty header (a chain key must follow '>')");
      const auto [it, inserted] = out.records_.emplace(current_key, TokenRecord{line_number, {}});
      if (!inserted)
        fail(name, ":", line_number, ": duplicate header '", current_key, "' (first at line ", it->second.line, ")");
      current = &it->second;
      continue;
    }
    size_t column = 0;
    while (column < line.size() && is_space(line[column])) ++column;
    if (column == line.size()) continue;  // blank line
    if (!current) fail(name, ":", line_number, ": text before the first '>' header");
    // Letters: every non-space character is one symbol. Codes: whitespace-separated words.
    while (column < line.size()) {
      if (is_space(line[column])) {
        ++column;
        continue;
      }
      size_t word_end = column + 1;
      if (alphabet.codes_mode())
        while (word_end < line.size() && !is_space(line[word_end])) ++word_end;
      const std::string symbol = line.substr(column, word_end - column);
      const int64_t state = alphabet.state_of(symbol);
      if (state < 0) {
        const bool numeric = alphabet.codes_mode() && symbol.find_first_not_of("0123456789") == std::string::npos;
        fail(name, ":", line_number, ":", column + 1, ": ", numeric ? "code " : "symbol '", printable(symbol),
             numeric ? " is out of range" : "' is not a symbol", " in the record of '", current_key, "' (expected ",
             alphabet.describe(), ")");
      }
      current->states.push_back(static_cast<uint16_t>(state));
      column = word_end;
    }
  }
  close();
  if (out.records_.empty()) fail(name, ": no '>' record (expected a FASTA-like file: >CHAIN_KEY, then its tokens)");
  return out;
}

const TokenRecord* TokenFile::find(const std::string& key) const {
  const auto it = records_.find(key);
  return it == records_.end() ? nullptr : &it->second;
}

}  // namespace sapling::precomputed
