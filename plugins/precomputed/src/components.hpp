// The two components of the precomputed plugin, as plugin.cpp registers them: option schemas and factories.
#pragma once
#include <memory>

#include "sapling/interfaces.hpp"
#include "sapling/options.hpp"

namespace sapling::precomputed {

// The 3Di letters in Foldseek's state order, and its mask state 'D' (INVALID_STATE).
inline constexpr const char* k3DiAlphabet = "ACDEFGHIKLMNPQRSTVWY";
inline constexpr const char* k3DiMaskSymbol = "D";

OptionSchema tokenizer_schema();
std::shared_ptr<StructureTokenizer> make_tokenizer(const Options& options);

OptionSchema encoder_schema();
std::shared_ptr<StructureEncoder> make_encoder(const Options& options);

}  // namespace sapling::precomputed
