// libFuzzer target: the precomputed plugin's readers of user files (.npy images, token files in letters or codes).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "embedding_file.hpp"
#include "sapling/error.hpp"
#include "token_file.hpp"

namespace {

// An accepted .npy image holds a rank-2 array no larger than the image itself.
void check_npy(const std::string& bytes) {
  torch::Tensor t;
  try {
    t = sapling::precomputed::parse_npy(bytes, "fuzz.npy");
  } catch (const sapling::Error&) {
    return;  // a clean rejection is the expected outcome for most inputs
  }
  if (t.dim() != 2) std::abort();
  if (static_cast<size_t>(t.numel()) * t.element_size() > bytes.size()) std::abort();
}

// A token file is accepted or refused with a sapling::Error; anything else (a crash, UB, a hang) is a finding.
void check_tokens(const std::string& text, const sapling::precomputed::TokenAlphabet& alphabet) {
  try {
    sapling::precomputed::TokenFile::parse(text, "fuzz.tokens", alphabet);
  } catch (const sapling::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the reader, so one corpus serves all three.
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const sapling::precomputed::TokenAlphabet letters("ACDEFGHIKLMNPQRSTVWY", 0, "");
  static const sapling::precomputed::TokenAlphabet codes("", 512, "X");
  switch (data[0] % 3) {
    case 0: check_npy(rest); break;
    case 1: check_tokens(rest, letters); break;
    default: check_tokens(rest, codes); break;
  }
  return 0;
}
