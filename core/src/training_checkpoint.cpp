// Model folders and resumable checkpoints: written to a temporary folder, then swapped in atomically.
#include "sapling/internal/training_checkpoint.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"

namespace sapling {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kProgressFile = "progress.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kLatestFile = "latest";

fs::path temporary_sibling(const fs::path& dir) {
  std::random_device rd;
  return dir.parent_path() / ("." + dir.filename().string() + ".tmp" + std::to_string(rd()));
}

// Puts folder `from` at `to`. An existing `to` is exchanged atomically
// (renameat2 RENAME_EXCHANGE) and the old contents removed afterwards, so
// `to` is never missing or half-written.
void install_folder(const fs::path& from, const fs::path& to) {
  if (!fs::exists(to)) {
    if (std::rename(from.c_str(), to.c_str()) != 0) fail(to.string(), ": cannot rename the new folder into place (", std::strerror(errno), ")");
    return;
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) != 0)
    fail(to.string(), ": cannot swap in the new folder (", std::strerror(errno), ")");
  std::error_code ignored;
  fs::remove_all(from, ignored);  // now holds the previous contents
}

void write_into(const fs::path& dir, const SequenceEncoder& model, const NamedTensors& heads) {
  model.save_pretrained(dir);
  model.save_tokenizer(dir);
  save_safetensors(dir / kHeadsFile, heads, {{"format", "pt"}, {"content", "sapling loss heads"}});
}

int64_t step_of(const fs::path& folder) {
  const auto name = folder.filename().string();
  if (name.rfind("step-", 0) != 0) return -1;
  try {
    size_t used = 0;
    const auto value = std::stoll(name.substr(5), &used);
    return used == name.size() - 5 ? value : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

std::vector<std::pair<int64_t, fs::path>> step_folders(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const int64_t step = step_of(entry.path());
    if (entry.is_directory() && step >= 0) out.emplace_back(step, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

void save_model_folder(const fs::path& dir, const SequenceEncoder& model, const NamedTensors& heads,
                       const std::string& model_card) {
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path());
  const auto tmp = temporary_sibling(dir);
  try {
    write_into(tmp, model, heads);
    if (!model_card.empty()) write_file_atomic(tmp / kModelCardFile, model_card);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  install_folder(tmp, dir);
}

CheckpointStore::CheckpointStore(fs::path run_dir) : dir_(std::move(run_dir) / "checkpoints") {}

void CheckpointStore::save(const TrainingProgress& progress, const SequenceEncoder& model, const NamedTensors& heads,
                           const NamedTensors& optimizer, int64_t keep) const {
  fs::create_directories(dir_);
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(progress.step));
  const fs::path final_dir = dir_ / name;
  const auto tmp = temporary_sibling(final_dir);
  try {
    write_into(tmp, model, heads);
    save_safetensors(tmp / kOptimizerFile, optimizer, {{"format", "pt"}, {"content", "sapling AdamW state"}});
    const json state = {{"step", progress.step},
                        {"epoch", progress.epoch},
                        {"batch_in_epoch", progress.batch_in_epoch},
                        {"best_valid", std::isfinite(progress.best_valid) ? json(progress.best_valid) : json(nullptr)},
                        {"best_step", progress.best_step},
                        {"validations_without_improvement", progress.validations_without_improvement},
                        {"metrics_bytes", progress.metrics_bytes},
                        {"train_seconds", progress.train_seconds},
                        {"residues", progress.residues},
                        {"recipe_digest", progress.recipe_digest}};
    // progress.json is written last: a folder without it is incomplete.
    write_file_atomic(tmp / kProgressFile, state.dump(2) + "\n");
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  install_folder(tmp, final_dir);
  write_file_atomic(dir_ / kLatestFile, final_dir.filename().string() + "\n");

  auto folders = step_folders(dir_);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < folders.size(); ++i) {
    if (folders[i].second == final_dir) continue;
    std::error_code ignored;
    fs::remove_all(folders[i].second, ignored);
  }
}

TrainingProgress CheckpointStore::read_progress(const fs::path& checkpoint) {
  const auto file = checkpoint / kProgressFile;
  json state;
  try {
    state = json::parse(read_file(file));
  } catch (const json::exception& e) {
    fail(file.string(), ": not valid JSON (", e.what(), ")");
  }
  TrainingProgress p;
  auto get = [&](const char* key, auto& target) {
    if (!state.contains(key)) fail(file.string(), ": key '", key, "' is missing");
    try {
      if (state[key].is_null()) return;
      target = state[key].get<std::decay_t<decltype(target)>>();
    } catch (const json::exception&) {
      fail(file.string(), ": key '", key, "' has the wrong type");
    }
  };
  get("step", p.step);
  get("epoch", p.epoch);
  get("batch_in_epoch", p.batch_in_epoch);
  get("best_valid", p.best_valid);
  get("best_step", p.best_step);
  get("validations_without_improvement", p.validations_without_improvement);
  get("metrics_bytes", p.metrics_bytes);
  get("train_seconds", p.train_seconds);
  get("residues", p.residues);
  get("recipe_digest", p.recipe_digest);
  if (!fs::exists(checkpoint / kOptimizerFile)) fail(checkpoint.string(), ": ", kOptimizerFile, " is missing");
  return p;
}

std::optional<fs::path> CheckpointStore::latest() const {
  if (!fs::exists(dir_)) return std::nullopt;
  const auto pointer = dir_ / kLatestFile;
  if (fs::exists(pointer)) {
    std::string name = read_file(pointer);
    name.erase(std::remove_if(name.begin(), name.end(), [](char c) { return c == '\n' || c == '\r' || c == ' '; }),
               name.end());
    const auto candidate = dir_ / name;
    try {
      if (step_of(candidate) < 0) fail("not a step-N folder");
      read_progress(candidate);
      return candidate;
    } catch (const Error& e) {
      warn(pointer.string(), " names '", name, "', which is not a complete checkpoint (", e.what(),
           "); looking for the newest one");
    }
  }
  auto folders = step_folders(dir_);
  for (auto it = folders.rbegin(); it != folders.rend(); ++it) {
    try {
      read_progress(it->second);
      return it->second;
    } catch (const Error& e) {
      warn("skipping damaged checkpoint: ", e.what());
    }
  }
  return std::nullopt;
}

}  // namespace sapling
