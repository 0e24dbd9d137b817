// Hugging Face tokenizer files for a sapling Tokenizer, so AutoTokenizer.from_pretrained(model folder) works.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "sapling/export.hpp"
#include "sapling/tokenizer.hpp"

namespace sapling {

// The two layouts the supported families are released with.
enum class HfTokenizerLayout {
  // transformers' slow EsmTokenizer: vocab.txt (one token per line, line i = id i),
  // tokenizer_config.json and special_tokens_map.json. The tokenizer's bos is "cls_token".
  // Also a tokenizer.json giving EsmTokenizer's ids (for Rust tokenizers and transformers.js).
  EsmVocabTxt,
  // PreTrainedTokenizerFast over a tokenizer.json (WordLevel model, one token per
  // character, "<bos> $A <eos>" template, decoded without spaces), as AMPLIFY's folders carry it.
  FastWordLevel,
};

// Writes the layout's files into `dir` (each one atomically), exactly the
// vocabulary and special tokens of `tokenizer`. `model_max_length` is the
// tokens per sequence (specials included) that tokenizer_config.json announces.
SAPLING_API void write_hf_tokenizer(const std::filesystem::path& dir, const Tokenizer& tokenizer,
                                    HfTokenizerLayout layout, int64_t model_max_length);

}  // namespace sapling
