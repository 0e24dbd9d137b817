// A FASTA-like file of per-chain structure tokens (3Di letters or integer VQ codes), parsed once and validated.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

namespace sapling::precomputed {

// The states a token file may hold and how they are written.
//   letters mode: one state per character of `letters` ("ACDEFGHIKLMNPQRSTVWY" for 3Di);
//   codes mode (codes > 0): states 0..codes-1 written as whitespace-separated integers,
//   as `sapling tokens` writes multi-character symbols.
// `extra`, when not empty, is the symbol of one more state after those: the mask
// state of a codebook that has no "unknown" code of its own.
class TokenAlphabet {
 public:
  TokenAlphabet(std::string letters, int64_t codes, std::string extra);
  bool codes_mode() const { return codes_ > 0; }
  int64_t num_states() const;
  std::string symbol(int64_t state) const;
  // The state written as `symbol`, or -1.
  int64_t state_of(const std::string& symbol) const;
  std::string describe() const;  // for error messages

 private:
  std::string letters_;
  int64_t codes_ = 0;
  std::string extra_;
  std::array<int32_t, 256> by_char_{};  // letters mode: character -> state, -1 when not a symbol
};

struct TokenRecord {
  size_t line = 0;               // 1-based line of the header
  std::vector<uint16_t> states;  // one per residue
};

// Every record of one token file. Headers are ">KEY [anything]": the key is the
// header up to the first whitespace. Errors name file:line (and column for a bad
// symbol): text before the first header, an empty header, a duplicate key, a
// record without tokens, a symbol not in the alphabet, a code out of range.
class TokenFile {
 public:
  static TokenFile read(const std::filesystem::path& file, const TokenAlphabet& alphabet);
  static TokenFile parse(const std::string& text, const std::string& name, const TokenAlphabet& alphabet);

  const TokenRecord* find(const std::string& key) const;
  size_t size() const { return records_.size(); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::unordered_map<std::string, TokenRecord> records_;
};

}  // namespace sapling::precomputed
