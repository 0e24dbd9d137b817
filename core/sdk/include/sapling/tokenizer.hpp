// Vocabulary-based residue tokenizer shared by the sequence-model plugins (ESM2, AMPLIFY, your own).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sapling/export.hpp"

namespace sapling {

struct TokenBatch {
  torch::Tensor ids;   // [B, T] int64, right-padded with pad_id
  torch::Tensor mask;  // [B, T] bool, true at non-pad tokens (specials included)
};

// A sequence is encoded as [bos] residues... [eos]. Bracketed names such as
// "<mask>" in the input text are single tokens; any other character not in
// the vocabulary becomes unk (after upper-casing). Ids are positions in the
// vocabulary list, as in the reference implementations.
class SAPLING_API Tokenizer {
 public:
  struct Specials {
    std::string bos, eos, pad, mask, unk;
  };
  Tokenizer() = default;
  Tokenizer(std::vector<std::string> vocab, Specials specials);

  std::vector<int64_t> encode(std::string_view sequence) const;  // with bos/eos
  TokenBatch batch(const std::vector<std::string>& sequences) const;
  TokenBatch pad(const std::vector<std::vector<int64_t>>& encoded) const;

  int64_t size() const { return static_cast<int64_t>(vocab_.size()); }
  int64_t id(const std::string& token) const;  // throws for unknown names
  const std::string& token(int64_t id) const { return vocab_.at(static_cast<size_t>(id)); }
  const std::vector<std::string>& vocab() const { return vocab_; }
  int64_t bos_id() const { return bos_; }
  int64_t eos_id() const { return eos_; }
  int64_t pad_id() const { return pad_; }
  int64_t mask_id() const { return mask_; }
  int64_t unk_id() const { return unk_; }
  // True for the residue letters (ids a masked-LM may predict or mask).
  bool is_residue(int64_t id) const;
  // Ids of the standard 20 amino acids (the masking candidates for 80/10/10).
  std::vector<int64_t> standard_residue_ids() const;

 private:
  std::vector<std::string> vocab_;
  std::map<std::string, int64_t> index_;
  int64_t char_ids_[256];
  int64_t bos_ = -1, eos_ = -1, pad_ = -1, mask_ = -1, unk_ = -1;
};

}  // namespace sapling
