// The `precomputed` structure tokenizer: per-chain tokens made by an external tool, read from one token file.
#include <memory>
#include <string>
#include <vector>

#include "chain_keys.hpp"
#include "components.hpp"
#include "sapling/error.hpp"
#include "sapling/log.hpp"  // for warn
#include "token_file.hpp"

namespace sapling::precomputed {
namespace {

// The mask state's symbol: mask_symbol when set, else 'D' for the 3Di letters
// (so that tokens from Foldseek reproduce foldseek_3di exactly), else an extra
// state: "?" after an alphabet, "mask" after integer codes.
std::string mask_symbol(const Options& options, bool codes_mode) {
  const std::string given = options.get_string("mask_symbol");
  if (!given.empty()) return given;
  if (codes_mode) return "mask";
  return options.get_string("alphabet") == k3DiAlphabet ? k3DiMaskSymbol : "?";
}

// A mask symbol that is one of the file's symbols is that state; any other
// becomes one extra state after them (codebooks without an "unknown" code).
TokenAlphabet build_alphabet(const Options& options) {
  const int64_t codes = options.get_int("codes");
  if (codes > 0 && options.origin("alphabet") != "default")
    fail(options.origin("codes"), ": precomputed tokens: set 'alphabet' (one state per character) or 'codes' "
         "(integer tokens), not both");
  const std::string letters = codes > 0 ? std::string() : options.get_string("alphabet");
  const std::string mask = mask_symbol(options, codes > 0);
  if (TokenAlphabet(letters, codes, "").state_of(mask) >= 0) return TokenAlphabet(letters, codes, "");
  return TokenAlphabet(letters, codes, mask);
}

class PrecomputedTokenizer final : public StructureTokenizer {
 public:
  explicit PrecomputedTokenizer(const Options& options)
      : alphabet_(build_alphabet(options)),
        file_(TokenFile::read(options.get_path("file"), alphabet_)),
        mask_state_(alphabet_.state_of(mask_symbol(options, alphabet_.codes_mode()))),
        mask_missing_(options.get_string("on_missing") == "mask") {}

  int64_t num_states() const override { return alphabet_.num_states(); }
  std::string symbol(int64_t state) const override { return alphabet_.symbol(state); }
  int64_t mask_state() const override { return mask_state_; }
  // Read-only after construction; the fallback claims lock themselves.
  bool thread_safe() const override { return true; }

  std::vector<int64_t> encode(const ChainStructure& chain) const override {
    const std::vector<std::string> keys = chain_keys(chain.entry, chain.chain);
    const std::string label = chain_label(chain.entry, chain.chain);
    const TokenRecord* record = nullptr;
    std::string key;
    for (size_t k = 0; k < keys.size() && !record; ++k) {
      record = file_.find(keys[k]);
      key = keys[k];
      if (record && k > 0) {
        const std::string other = claims_.claim(key, chain.chain);
        if (!other.empty())
          fail("precomputed tokens: ", file_.name(), ":", record->line, ": '", key, "' (an entry-only key, meant for "
               "a one-chain file) would serve both chain ", other, " and chain ", chain.chain, " of ", chain.entry,
               "; name the records ", chain.entry, "_CHAIN");
      }
    }
    if (!record) {
      std::string tried;
      for (const auto& k : keys) tried += (tried.empty() ? "'" : " or '") + k + "'";
      if (!mask_missing_)
        fail("precomputed tokens: ", label, " is not in ", file_.name(), " (no header ", tried,
             "; on_missing = \"mask\" gives such chains mask states)");
      warn("precomputed tokens: ", label, " is not in ", file_.name(), " (no header ", tried, "): all ",
           chain.length(), " residues get the mask state '", symbol(mask_state_), "' (on_missing = \"mask\")");
      return std::vector<int64_t>(static_cast<size_t>(chain.length()), mask_state_);
    }
    if (static_cast<int64_t>(record->states.size()) != chain.length())
      fail("precomputed tokens: ", file_.name(), ":", record->line, ": '", key, "' has ", record->states.size(),
           " tokens but ", label, " has ", chain.length(), " residues (sapling prepare stores the residues with a "
           "CA by default, --sequence observed; tokens must be one per stored residue)");
    return std::vector<int64_t>(record->states.begin(), record->states.end());
  }

 private:
  TokenAlphabet alphabet_;
  TokenFile file_;
  int64_t mask_state_;
  bool mask_missing_;
  mutable FallbackClaims claims_;
};

}  // namespace

OptionSchema tokenizer_schema() {
  OptionSchema schema;
  schema.add("file", OptionType::Path)
      .require()
      .doc("FASTA-like token file: '>KEY' headers (ENTRY_CHAIN, or ENTRY for a one-chain file), then the chain's "
           "tokens, one per stored residue (gzip allowed)");
  schema.add("alphabet", OptionType::String)
      .default_value(std::string(k3DiAlphabet))
      .doc("one state per character, in state order (default: Foldseek's 3Di letters)");
  schema.add("codes", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .max(32766)
      .doc("> 0: tokens are whitespace-separated integer codes 0..codes-1 (a VQ codebook size) instead of letters");
  schema.add("mask_symbol", OptionType::String)
      .default_value(std::string())
      .doc("symbol of the mask (unknown) state; one not in the alphabet or codes is an extra state after them. "
           "Empty: 'D' for the 3Di letters (Foldseek's), else an extra '?' (letters) or 'mask' (codes)");
  schema.add("on_missing", OptionType::String)
      .default_value(std::string("error"))
      .one_of({"error", "mask"})
      .doc("a chain without a record: error (prepare reports and skips it unless --strict), or mask (every "
           "residue gets the mask state, with a warning naming the chain)");
  return schema;
}

std::shared_ptr<StructureTokenizer> make_tokenizer(const Options& options) {
  try {
    return std::make_shared<PrecomputedTokenizer>(options);
  } catch (const Error&) {
    if (options.section().empty()) throw;
    rethrow_with_context("[" + options.section() + "]");
  }
}

}  // namespace sapling::precomputed
