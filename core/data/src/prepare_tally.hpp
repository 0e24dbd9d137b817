// Private to prepare: the counts a prepare run reports, summed over journaled shards, resumed runs, updates and parts.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace sapling {

struct PrepareTally {
  int64_t files = 0, files_read = 0, chains_read = 0, residues_kept = 0, high_quality_kept = 0;
  int64_t residues_embedded = 0;
  double embed_seconds = 0;
  std::map<std::string, int64_t> dropped, kept_by_split, high_quality_by_split;
  nlohmann::json failures = nlohmann::json::array();  // {"file", "reason"} of unreadable files
  nlohmann::json inputs = nlohmann::json::array();    // [name, size, mtime] of every file processed

  int64_t chains_kept() const {
    int64_t n = 0;
    for (const auto& [split, k] : kept_by_split) n += k;
    return n;
  }
  void count_kept(const std::string& split, bool high_quality, int64_t residues) {
    ++kept_by_split[split];
    if (high_quality) ++high_quality_by_split[split], ++high_quality_kept;
    residues_kept += residues;
  }
  void add(const PrepareTally& o) {
    files += o.files;
    files_read += o.files_read;
    chains_read += o.chains_read;
    residues_kept += o.residues_kept;
    high_quality_kept += o.high_quality_kept;
    residues_embedded += o.residues_embedded;
    embed_seconds += o.embed_seconds;
    for (const auto& [k, n] : o.dropped) dropped[k] += n;
    for (const auto& [k, n] : o.kept_by_split) kept_by_split[k] += n;
    for (const auto& [k, n] : o.high_quality_by_split) high_quality_by_split[k] += n;
    for (const auto& f : o.failures) failures.push_back(f);
    for (const auto& f : o.inputs) inputs.push_back(f);
  }
  // The index's "prepare" fields (an update rewrites "inputs": it knows which files it replaced).
  nlohmann::json to_json() const {
    return {{"files", files},
            {"files_read", files_read},
            {"chains_read", chains_read},
            {"residues_kept", residues_kept},
            {"high_quality_kept", high_quality_kept},
            {"residues_embedded", residues_embedded},
            {"embed_seconds", embed_seconds},
            {"dropped", dropped},
            {"kept_by_split", kept_by_split},
            {"high_quality_by_split", high_quality_by_split},
            {"failures", failures},
            {"inputs", inputs}};
  }
  // Reads to_json()'s fields; absent ones (an older index) count as zero.
  static PrepareTally from_json(const nlohmann::json& j) {
    PrepareTally t;
    t.files = j.value("files", int64_t{0});
    t.files_read = j.value("files_read", int64_t{0});
    t.chains_read = j.value("chains_read", int64_t{0});
    t.residues_kept = j.value("residues_kept", int64_t{0});
    t.high_quality_kept = j.value("high_quality_kept", int64_t{0});
    t.residues_embedded = j.value("residues_embedded", int64_t{0});
    t.embed_seconds = j.value("embed_seconds", 0.0);
    t.dropped = j.value("dropped", std::map<std::string, int64_t>{});
    t.kept_by_split = j.value("kept_by_split", std::map<std::string, int64_t>{});
    t.high_quality_by_split = j.value("high_quality_by_split", std::map<std::string, int64_t>{});
    t.failures = j.value("failures", nlohmann::json::array());
    t.inputs = j.value("inputs", nlohmann::json::array());
    return t;
  }
};

}  // namespace sapling
