// Tokenizer: vocabulary lookups, bracketed special tokens, padding into batches.
#include "sapling/tokenizer.hpp"

#include <cctype>

#include "sapling/error.hpp"

namespace sapling {

Tokenizer::Tokenizer(std::vector<std::string> vocab, Specials specials) : vocab_(std::move(vocab)) {
  for (size_t i = 0; i < vocab_.size(); ++i) index_[vocab_[i]] = static_cast<int64_t>(i);
  bos_ = id(specials.bos);
  eos_ = id(specials.eos);
  pad_ = id(specials.pad);
  mask_ = id(specials.mask);
  unk_ = id(specials.unk);
  for (int c = 0; c < 256; ++c) {
    const std::string upper(1, static_cast<char>(std::toupper(c)));
    auto it = index_.find(upper);
    char_ids_[c] = it == index_.end() ? unk_ : it->second;
  }
}

int64_t Tokenizer::id(const std::string& token) const {
  auto it = index_.find(token);
  if (it == index_.end()) fail("token '", token, "' is not in the vocabulary");
  return it->second;
}

std::vector<int64_t> Tokenizer::encode(std::string_view sequence) const {
  std::vector<int64_t> out;
  out.reserve(sequence.size() + 2);
  out.push_back(bos_);
  for (size_t i = 0; i < sequence.size(); ++i) {
    const char c = sequence[i];
    if (c == '<') {
      const size_t close = sequence.find('>', i);
      if (close != std::string_view::npos) {
        auto it = index_.find(std::string(sequence.substr(i, close - i + 1)));
        if (it != index_.end()) {
          out.push_back(it->second);
          i = close;
          continue;
        }
      }
    }
    out.push_back(char_ids_[static_cast<unsigned char>(c)]);
  }
  out.push_back(eos_);
  return out;
}

TokenBatch Tokenizer::pad(const std::vector<std::vector<int64_t>>& encoded) const {
  size_t longest = 0;
  for (const auto& e : encoded) longest = std::max(longest, e.size());
  const auto B = static_cast<int64_t>(encoded.size());
  const auto T = static_cast<int64_t>(longest);
  TokenBatch out{torch::full({B, T}, pad_, torch::kInt64), torch::zeros({B, T}, torch::kBool)};
  auto ids = out.ids.accessor<int64_t, 2>();
  auto mask = out.mask.accessor<bool, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < encoded[b].size(); ++t) {
      ids[b][t] = encoded[b][t];
      mask[b][t] = true;
    }
  return out;
}

TokenBatch Tokenizer::batch(const std::vector<std::string>& sequences) const {
  std::vector<std::vector<int64_t>> encoded;
  encoded.reserve(sequences.size());
  for (const auto& s : sequences) encoded.push_back(encode(s));
  return pad(encoded);
}

bool Tokenizer::is_residue(int64_t id) const {
  if (id < 0 || id >= size()) return false;
  const std::string& t = vocab_[static_cast<size_t>(id)];
  return t.size() == 1 && std::isalpha(static_cast<unsigned char>(t[0]));
}

std::vector<int64_t> Tokenizer::standard_residue_ids() const {
  std::vector<int64_t> out;
  for (char c : std::string("ACDEFGHIKLMNPQRSTVWY")) {
    auto it = index_.find(std::string(1, c));
    if (it != index_.end()) out.push_back(it->second);
  }
  return out;
}

}  // namespace sapling
