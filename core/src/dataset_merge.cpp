// `sapling prepare --merge`: one dataset index over the shards of the parts that `prepare --part K/N` workers wrote.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iomanip>
#include <map>
#include <regex>
#include <sstream>

#include "dataset_index.hpp"
#include "prepare_tally.hpp"
#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/internal/prepare.hpp"

namespace sapling {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The index entries a merged dataset takes from every part unchanged; they must agree.
const char* const kSharedKeys[] = {"format", "version", "has_tokens", "embedding_dim", "tokenizer",
                                   "tokenizer_options", "token_states", "token_symbols", "token_mask_state"};

}  // namespace

std::string merge_dataset_parts(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("prepare --merge: ", dir.string(), " is not a folder");
  const std::regex part_name(R"(part-(\d{5})-of-(\d{5}))");
  std::map<int, std::map<int, fs::path>> found;  // part count -> index -> folder
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_directory() && std::regex_match(name, m, part_name))
      found[std::stoi(m[2].str())][std::stoi(m[1].str())] = e.path();
  }
  if (found.empty())
    fail("prepare --merge: ", dir.string(), " has no part-K-of-N folders (written by `sapling prepare --part K/N --out ",
         dir.string(), "`)");
  if (found.size() > 1) {
    std::string counts;
    for (const auto& [n, parts] : found) counts += (counts.empty() ? "" : ", ") + std::to_string(n);
    fail("prepare --merge: ", dir.string(), " holds parts of runs split ", counts,
         " ways; remove the folders of the runs you do not want");
  }
  const int count = found.begin()->first;
  const auto& parts = found.begin()->second;
  std::string missing;
  for (int k = 0; k < count; ++k) {
    const auto it = parts.find(k);
    const bool finished = it != parts.end() && fs::exists(it->second / "index.json");
    if (!finished)
      missing += (missing.empty() ? "" : ", ") + std::to_string(k) +
                 (it == parts.end() ? " (absent)" : fs::exists(it->second / "prepare.journal") ? " (interrupted)" : " (unfinished)");
  }
  if (!missing.empty())
    fail("prepare --merge: parts not finished: ", missing, " of 0..", count - 1, "; run `sapling prepare ... --part K/", count,
         "` for each (an interrupted one resumes)");

  json merged;
  json shards = json::array();
  struct Chain {
    int64_t input_index;
    std::string entry;  // index.json text
  };
  std::vector<Chain> chains;
  PrepareTally tally;
  int64_t residues = 0;
  json settings, command;
  std::ostringstream summary;
  for (int k = 0; k < count; ++k) {
    const fs::path folder = parts.at(k);
    const std::string where = (folder / "index.json").string();
    StructureDataset check(folder);  // every shard opened and validated before the index names it
    const json index = read_index_without_chains(folder / "index.json");
    const json prepare = index.value("prepare", json::object());
    const json part = prepare.value("part", json::object());
    if (part.value("index", -1) != k || part.value("count", -1) != count)
      fail(where, ": not part ", k, " of ", count, " (its index records part ", part.value("index", -1), " of ",
           part.value("count", -1), ")");
    if (k == 0) {
      settings = prepare.at("settings");
      command = prepare.value("command", json::array());
      merged["prepare"]["part_inputs"] = part.at("inputs_digest");
    } else {
      if (prepare.at("settings") != settings)
        fail(where, ": prepared with other options than part 0 (", prepare.at("settings").dump(), " vs ", settings.dump(), ")");
      if (part.at("inputs_digest") != merged["prepare"]["part_inputs"])
        fail(where, ": its run was given other input files than part 0's; every part must be given the same inputs");
    }
    // An empty part says nothing about tokens or embeddings: the first part with chains sets them.
    if (check.size() > 0) {
      if (!merged.contains("format")) {
        for (const char* key : kSharedKeys) merged[key] = index.at(key);
      } else {
        for (const char* key : kSharedKeys)
          if (index.at(key) != merged.at(key))
            fail(where, ": '", key, "' is ", index.at(key).dump(), " but an earlier part has ", merged.at(key).dump(),
                 "; the parts were prepared differently");
      }
    }
    const size_t shard_offset = shards.size();
    const std::string prefix = folder.filename().string() + "/";
    for (json shard : index.at("shards")) {
      shard["file"] = prefix + shard.at("file").get<std::string>();
      shards.push_back(std::move(shard));
    }
    for (size_t i = 0; i < check.size(); ++i) {
      const auto [shard, row] = check.location(i);
      chains.push_back({check.metadata(i).input_index, chain_index_entry(check.metadata(i), shard_offset + shard, row)});
      residues += check.metadata(i).length;
    }
    tally.add(PrepareTally::from_json(prepare));
    summary << "part " << k << ": " << check.size() << " chains in " << index.at("shards").size() << " shards\n";
  }
  // The order one process would have written: by input file (parts hold disjoint files, each in order).
  std::stable_sort(chains.begin(), chains.end(),
                   [](const Chain& a, const Chain& b) { return a.input_index < b.input_index; });
  std::vector<std::string> lines;
  lines.reserve(chains.size());
  for (auto& c : chains) lines.push_back(std::move(c.entry));
  if (!merged.contains("format")) fail("prepare --merge: no part holds a chain; nothing to merge");
  merged["shards"] = shards;
  merged["chains_total"] = chains.size();
  merged["residues_total"] = residues;
  json info = tally.to_json();
  info["command"] = command;
  info["settings"] = settings;
  info["merged_parts"] = count;
  info["chains_kept"] = chains.size();
  for (const char* key : {"split_by", "valid_fraction", "reference_fraction", "sequence", "seed"})
    info[key] = settings.contains(key) ? settings.at(key) : json(nullptr);
  merged["prepare"] = info;
  write_dataset_index(dir, merged, lines);
  StructureDataset reopened(dir);  // the merged index reads back
  summary << "merged " << count << " parts: " << reopened.size() << " chains, " << residues << " residues, "
          << shards.size() << " shards (not copied); wrote " << (dir / "index.json").string() << "\n";
  return summary.str();
}

}  // namespace sapling
