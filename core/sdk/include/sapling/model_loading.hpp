// Opening a pretrained pLM folder: pick the sequence encoder from config.json's model_type and load it.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "sapling/interfaces.hpp"

namespace sapling {

// "esm2" for model_type "esm", "amplify" for "AMPLIFY" (config.json or config.yaml);
// throws naming the folder when the type is missing or unknown.
SAPLING_API std::string detect_sequence_encoder(const std::filesystem::path& dir);
// Its name until sapling 0.2 (it names a registered encoder, not a plugin library); removed in the next release.
[[deprecated("use detect_sequence_encoder")]] inline std::string detect_sequence_plugin(const std::filesystem::path& dir) {
  return detect_sequence_encoder(dir);
}

// Creates the encoder through the registry with `path = dir` (the encoder detected
// unless named) and puts it in eval mode. `dir` may be a hub id in the local
// Hugging Face cache ("facebook/esm2_t6_8M_UR50D", hub_cache.hpp).
SAPLING_API std::shared_ptr<SequenceEncoder> load_sequence_encoder(const std::filesystem::path& dir,
                                                                   const std::string& encoder = "");

}  // namespace sapling
