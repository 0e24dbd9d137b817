// Writes vocab.txt / tokenizer.json, tokenizer_config.json and special_tokens_map.json from a Tokenizer's vocabulary.
#include "sapling/hf_tokenizer.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "sapling/files.hpp"

namespace sapling {

namespace {

using ordered_json = nlohmann::ordered_json;

// Role name -> token, in the order transformers writes them.
ordered_json special_tokens(const Tokenizer& t, HfTokenizerLayout layout) {
  const char* bos_role = layout == HfTokenizerLayout::EsmVocabTxt ? "cls_token" : "bos_token";
  return ordered_json{{bos_role, t.token(t.bos_id())},
                      {"eos_token", t.token(t.eos_id())},
                      {"mask_token", t.token(t.mask_id())},
                      {"pad_token", t.token(t.pad_id())},
                      {"unk_token", t.token(t.unk_id())}};
}

// The special tokens' ids in increasing order (transformers' added_tokens_decoder order).
std::vector<int64_t> special_ids(const Tokenizer& t) {
  std::vector<int64_t> ids{t.bos_id(), t.eos_id(), t.mask_id(), t.pad_id(), t.unk_id()};
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

ordered_json added_token(const Tokenizer& t, int64_t id, bool with_id) {
  ordered_json out;
  if (with_id) out["id"] = id;
  out["content"] = t.token(id);
  out["single_word"] = false;
  out["lstrip"] = false;
  out["rstrip"] = false;
  out["normalized"] = false;
  out["special"] = true;
  return out;
}

ordered_json tokenizer_config(const Tokenizer& t, HfTokenizerLayout layout, int64_t model_max_length) {
  ordered_json decoder = ordered_json::object();
  for (int64_t id : special_ids(t)) decoder[std::to_string(id)] = added_token(t, id, false);
  ordered_json config;
  config["added_tokens_decoder"] = decoder;
  const auto specials = special_tokens(t, layout);
  for (const auto& [role, token] : specials.items()) config[role] = token;
  config["clean_up_tokenization_spaces"] = layout == HfTokenizerLayout::EsmVocabTxt;
  config["model_max_length"] = model_max_length;
  config["padding_side"] = "right";
  config["truncation_side"] = "right";
  config["tokenizer_class"] = layout == HfTokenizerLayout::EsmVocabTxt ? "EsmTokenizer" : "PreTrainedTokenizerFast";
  return config;
}

// A regex character class of the vocabulary's one-character tokens (`negate`: every other non-space character).
std::string single_character_class(const Tokenizer& t, bool negate) {
  std::string out = negate ? "[^" : "[";
  for (const auto& token : t.vocab()) {
    if (token.size() != 1) continue;
    if (std::string("\\]^-[").find(token[0]) != std::string::npos) out += '\\';
    out += token;
  }
  return out + (negate ? "\\s]+" : "]");
}

// How the text is cut into words before the WordLevel lookup. AMPLIFY's tokenizer: every character is a word.
// transformers' EsmTokenizer: every vocabulary token is matched in the text (a trie), the text between matches is
// split at whitespace, and each remaining piece is one word, so a run of unknown characters ("qr") is one <unk>
// and "q r" two; whitespace itself gives nothing. Multi-character tokens are added tokens (matched first).
ordered_json pre_tokenizer(const Tokenizer& t, HfTokenizerLayout layout) {
  auto split = [](const std::string& regex, const char* behavior) {
    return ordered_json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", behavior}, {"invert", false}};
  };
  if (layout == HfTokenizerLayout::FastWordLevel) return split(".", "Isolated");
  ordered_json steps = ordered_json::array();
  steps.push_back(split("\\s+", "Removed"));
  steps.push_back(split(single_character_class(t, false) + "|" + single_character_class(t, true), "Isolated"));
  return ordered_json{{"type", "Sequence"}, {"pretokenizers", steps}};
}

// AMPLIFY's layout upper-cases letters first, as sapling's own Tokenizer does, so lower-case sequences give the ids
// sapling trains and embeds with (tokenizers has no upper-case normalizer: one Replace per letter). The ESM layout
// keeps EsmTokenizer's behaviour, which has none (sapling's differs there: docs/training.md).
ordered_json normalizer(HfTokenizerLayout layout) {
  if (layout == HfTokenizerLayout::EsmVocabTxt) return nullptr;
  ordered_json steps = ordered_json::array();
  for (char c = 'a'; c <= 'z'; ++c)
    steps.push_back({{"type", "Replace"}, {"pattern", {{"String", std::string(1, c)}}},
                     {"content", std::string(1, static_cast<char>(c - 'a' + 'A'))}});
  return ordered_json{{"type", "Sequence"}, {"normalizers", steps}};
}

// tokenizers' JSON schema: words (pre_tokenizer) looked up whole in a WordLevel vocabulary, added tokens matched
// before splitting; "<bos> $A <eos>" around the sequence. Decoding: AMPLIFY's fuses the tokens into the sequence;
// the ESM layout keeps EsmTokenizer's tokens joined by spaces (no decoder).
ordered_json fast_tokenizer(const Tokenizer& t, HfTokenizerLayout layout) {
  ordered_json added = ordered_json::array();
  for (int64_t id : special_ids(t)) added.push_back(added_token(t, id, true));
  if (layout == HfTokenizerLayout::EsmVocabTxt) {
    const auto specials = special_ids(t);
    for (int64_t id = 0; id < t.size(); ++id) {
      if (t.token(id).size() < 2 || std::find(specials.begin(), specials.end(), id) != specials.end()) continue;
      auto token = added_token(t, id, true);
      token["special"] = false;  // e.g. <null_1>: EsmTokenizer matches it in the text like any token
      added.push_back(token);
    }
  }
  ordered_json vocab = ordered_json::object();
  for (int64_t id = 0; id < t.size(); ++id) vocab[t.token(id)] = id;
  const auto& bos = t.token(t.bos_id());
  const auto& eos = t.token(t.eos_id());
  auto special = [](const std::string& id, int type) { return ordered_json{{"SpecialToken", {{"id", id}, {"type_id", type}}}}; };
  auto sequence = [](const char* id, int type) { return ordered_json{{"Sequence", {{"id", id}, {"type_id", type}}}}; };
  ordered_json post;
  post["type"] = "TemplateProcessing";
  post["single"] = {special(bos, 0), sequence("A", 0), special(eos, 0)};
  post["pair"] = {special(bos, 0), sequence("A", 0), special(eos, 0), sequence("B", 1), special(eos, 1)};
  post["special_tokens"] = ordered_json::object();
  for (int64_t id : {t.bos_id(), t.eos_id()})
    post["special_tokens"][t.token(id)] = {{"id", t.token(id)}, {"ids", {id}}, {"tokens", {t.token(id)}}};
  ordered_json out;
  out["version"] = "1.0";
  out["truncation"] = nullptr;
  out["padding"] = nullptr;
  out["added_tokens"] = added;
  out["normalizer"] = normalizer(layout);
  out["pre_tokenizer"] = pre_tokenizer(t, layout);
  out["post_processor"] = post;
  out["decoder"] = layout == HfTokenizerLayout::FastWordLevel ? ordered_json{{"type", "Fuse"}} : ordered_json(nullptr);
  out["model"] = {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", t.token(t.unk_id())}};
  return out;
}

}  // namespace

void write_hf_tokenizer(const std::filesystem::path& dir, const Tokenizer& tokenizer, HfTokenizerLayout layout,
                        int64_t model_max_length) {
  if (layout == HfTokenizerLayout::EsmVocabTxt) {
    std::string vocab;
    for (const auto& token : tokenizer.vocab()) vocab += token + "\n";
    write_file_atomic(dir / "vocab.txt", vocab);
  }
  write_file_atomic(dir / "tokenizer.json", fast_tokenizer(tokenizer, layout).dump(2) + "\n");
  write_file_atomic(dir / "tokenizer_config.json", tokenizer_config(tokenizer, layout, model_max_length).dump(2) + "\n");
  write_file_atomic(dir / "special_tokens_map.json", special_tokens(tokenizer, layout).dump(2) + "\n");
}

}  // namespace sapling
