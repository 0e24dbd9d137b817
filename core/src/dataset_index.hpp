// Private to the data layer: writing a dataset's index.json (one line per chain) for the writer and the part merger.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>

namespace sapling {

// Writes DIR/index.json atomically, then removes top-level shard-*.safetensors
// files of DIR that the index does not name (an earlier dataset's).
void write_dataset_index(const std::filesystem::path& dir, const nlohmann::json& index);

}  // namespace sapling
