// Private to the data layer: writing a dataset's index.json (one line per chain) for the writer and the part merger.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "sapling/dataset.hpp"

namespace sapling {

// Writes DIR/index.json atomically: the entries of `header` (its "chains", if
// any, ignored), then `chains`, one compact JSON object per line (a million
// chains would cost gigabytes as a JSON tree). Then removes top-level
// shard-*.safetensors files of DIR that the index does not name (an earlier dataset's).
void write_dataset_index(const std::filesystem::path& dir, const nlohmann::json& header,
                         const std::vector<std::string>& chains);

// A chain's entry in index.json: its metadata, shard and row, as compact JSON text.
std::string chain_index_entry(const ChainMetadata& metadata, size_t shard, size_t row);

// The keys of two JSON objects whose values differ, nested keys dotted ("content.seed 6 -> 7, pgnn.weights"),
// for messages that refuse to mix settings (a resumed or updated dataset).
std::string differing_keys(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix = "");

// index.json without its chains (parsed and dropped one by one), "prepare" record included.
nlohmann::json read_index_without_chains(const std::filesystem::path& index_path);

}  // namespace sapling
