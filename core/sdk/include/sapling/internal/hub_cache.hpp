// Models by Hugging Face hub id ("facebook/esm2_t33_650M_UR50D"), found in the local hub cache; never downloaded.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "sapling/export.hpp"

namespace sapling {

// `owner/name` or `owner/name@revision` as the hub spells repository ids (letters, digits, '-', '_', '.'), not
// starting with '.' (so "./x" and "../x" stay paths).
SAPLING_API bool looks_like_hub_id(const std::string& text);

// The hub cache as huggingface_hub finds it: $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
SAPLING_API std::filesystem::path hub_cache_dir();

// The snapshot folder of `id` (`owner/name[@revision]`, revision "main" unless given: a branch or tag name read
// from refs/, or a commit hash) in the cache, when it is there and holds a config.json.
SAPLING_API std::optional<std::filesystem::path> find_hub_snapshot(const std::string& id);

// A model folder as a user wrote it: `resolved` (the path, made relative to its recipe) when it exists, else the
// hub id's snapshot in the cache; a hub id missing from the cache is an error naming the cache and the command
// that downloads it. Anything else is returned as `resolved`, for the loader's own error.
SAPLING_API std::filesystem::path resolve_model_folder(const std::string& text, const std::filesystem::path& resolved);

// The warning/error text for a hub id that is not in the cache.
SAPLING_API std::string hub_download_hint(const std::string& id);

}  // namespace sapling
