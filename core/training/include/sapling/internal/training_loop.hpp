// The loop kit every training program shares (train, train-tokenizer, pretrain-pgnn): optimiser and schedule from
// settings, the finite-loss check, JSON-lines metrics, the time limit and Ctrl-C, atomic resume folders.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sapling/error.hpp"
#include "sapling/export.hpp"
#include "sapling/internal/optimizer.hpp"
#include "sapling/options.hpp"
#include "sapling/safetensors.hpp"
#include "sapling/internal/tensorboard.hpp"

namespace sapling {

// ---------------------------------------------------------------- optimiser and schedule

// AdamW's betas and eps from an [optim]-style table (keys betas = [b1, b2], eps); fails naming the key.
SAPLING_API AdamWSettings adamw_settings(const Options& optim);

// torch.optim.Adam's defaults (betas 0.9 / 0.999, eps 1e-8, no weight decay) as an AdamW over one group
// "parameters" at learning rate `lr`, the tensors named "<prefix><index>" so that its state saves by name.
SAPLING_API std::unique_ptr<AdamW> make_adam(const std::vector<torch::Tensor>& parameters, double lr,
                                             const std::string& prefix = "parameter.");

// Sets every group's lr to its peak_lr times lr_factor(step, warmup, total, ...), the schedule and its floor read
// from an [optim]-style table (keys schedule, min_lr_ratio).
SAPLING_API void set_scheduled_lr(AdamW& optimizer, const Options& optim, int64_t step, int64_t warmup, int64_t total);

// Optimiser state from a safetensors file written by save_safetensors(file, optimizer.state()).
SAPLING_API void load_optimizer_state(AdamW& optimizer, const std::filesystem::path& file);

// ---------------------------------------------------------------- finite loss

// Fails "<program>: loss is <value> <where>; stopping (<hint>)" when `value` is NaN or infinite.
SAPLING_API void check_finite_loss(double value, const std::string& program, const std::string& where,
                                   const std::string& hint);

// ---------------------------------------------------------------- metrics

// What one JSON-lines record shows in TensorBoard: (tag, value) pairs at `step`.
struct MetricScalars {
  int64_t step = 0;
  std::vector<std::pair<std::string, double>> values;
};
using MetricView = std::function<MetricScalars(const nlohmann::json& record)>;

// `sapling train`'s view: every number but "step" as "<type>/<key>" at the record's "step" (type "train" by default).
SAPLING_API MetricScalars scalars_by_type(const nlohmann::json& record);

// A JSON-lines metrics file, one record per line, flushed as written, and optionally the same numbers as
// TensorBoard scalars. A resumed run truncates the file to the length its checkpoint recorded (`keep_bytes`), so
// no step is logged twice, and tells TensorBoard to drop the earlier files' steps after `resumed_step`.
// An empty `path` writes no file; an empty `tensorboard_dir` no events; `enabled` false writes nothing (the
// processes other than rank 0 of a data-parallel run).
class SAPLING_API MetricsLog {
 public:
  MetricsLog(std::filesystem::path path, uint64_t keep_bytes, bool enabled, const std::filesystem::path& tensorboard_dir,
             int64_t resumed_step, MetricView view = scalars_by_type);
  void write(const nlohmann::json& record);
  // Current length of the file (what a checkpoint records); 0 without one.
  uint64_t bytes() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool enabled_;
  std::ofstream out_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  MetricView view_;
};

// ---------------------------------------------------------------- stopping

// The two ways a run stops before its planned end, both leaving a checkpoint: a time limit (seconds since the
// start; 0 = none) and Ctrl-C. While an object lives, the first SIGINT only sets a flag the loop polls; a second
// one ends the process as usual. The previous handler is restored on destruction.
class SAPLING_API StopRequest {
 public:
  explicit StopRequest(double time_limit_seconds);
  ~StopRequest();
  StopRequest(const StopRequest&) = delete;
  StopRequest& operator=(const StopRequest&) = delete;

  bool interrupted() const;                   // Ctrl-C seen
  bool time_up(double elapsed_seconds) const;  // the limit is set and reached
  double time_limit() const { return time_limit_; }

 private:
  double time_limit_;
  void (*previous_)(int) = nullptr;
};

// ---------------------------------------------------------------- resume folders

// Writes folder `dir` atomically: `fill` writes into a temporary sibling, which then replaces `dir` (an existing
// one is exchanged with renameat2, so `dir` is never missing or half-written). A throwing `fill` leaves `dir` as it was.
SAPLING_API void write_folder_atomic(const std::filesystem::path& dir,
                                     const std::function<void(const std::filesystem::path& tmp)>& fill);

// A CPU generator's state as a tensor (uint8) and back: the random stream is part of what a resumed run continues.
SAPLING_API torch::Tensor generator_state(const at::Generator& generator);
SAPLING_API void set_generator_state(at::Generator& generator, const torch::Tensor& state);

// Every tensor of a safetensors file, by name.
SAPLING_API NamedTensors read_named_tensors(const std::filesystem::path& file);

// One resumable state of a run that keeps a single checkpoint: a folder holding the program's files and
// progress.json, written last (a folder without it is incomplete and ignored with a warning).
class SAPLING_API ResumeFolder {
 public:
  explicit ResumeFolder(std::filesystem::path dir) : dir_(std::move(dir)) {}
  // Writes the folder atomically: `fill` writes the program's files into the temporary folder, then `progress`.
  void save(const nlohmann::json& progress, const std::function<void(const std::filesystem::path& tmp)>& fill) const;
  // progress.json of a complete folder; empty when there is none (a damaged one warns).
  std::optional<nlohmann::json> progress() const;
  void remove() const;
  const std::filesystem::path& directory() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

// Field `key` of a progress record read from `file`, with a clear error when it is missing or has another type.
template <typename T>
T progress_field(const nlohmann::json& progress, const char* key, const std::filesystem::path& file) {
  if (!progress.contains(key)) fail(file.string(), ": key '", key, "' is missing");
  try {
    return progress.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(file.string(), ": key '", key, "' has the wrong type");
  }
}

}  // namespace sapling
