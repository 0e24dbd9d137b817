// The loop kit shared by the training programs: Adam(W) and schedule, finite loss, metrics, stopping, resume folders.
#include "sapling/internal/training_loop.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <stdio.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <random>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"

namespace sapling {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------- optimiser and schedule

AdamWSettings adamw_settings(const Options& optim) {
  const auto betas = optim.get_float_list("betas");
  if (betas.size() != 2 || betas[0] < 0 || betas[0] >= 1 || betas[1] < 0 || betas[1] >= 1)
    fail(optim.origin("betas"), ": [", optim.section(), "] betas must be two values in [0, 1)");
  return AdamWSettings{betas[0], betas[1], optim.get_float("eps")};
}

std::unique_ptr<AdamW> make_adam(const std::vector<torch::Tensor>& parameters, double lr, const std::string& prefix) {
  ParameterGroup group{"parameters", {}, lr, 0.0, lr};
  for (size_t i = 0; i < parameters.size(); ++i) group.parameters.push_back({prefix + std::to_string(i), parameters[i]});
  return std::make_unique<AdamW>(std::vector<ParameterGroup>{std::move(group)}, AdamWSettings{0.9, 0.999, 1e-8});
}

void set_scheduled_lr(AdamW& optimizer, const Options& optim, int64_t step, int64_t warmup, int64_t total) {
  const double factor =
      lr_factor(step, warmup, total, parse_decay_schedule(optim.get_string("schedule")), optim.get_float("min_lr_ratio"));
  for (auto& group : optimizer.groups()) group.lr = group.peak_lr * factor;
}

NamedTensors read_named_tensors(const fs::path& file) {
  SafetensorsFile stored(file);
  NamedTensors out;
  for (const auto& key : stored.keys()) out.emplace_back(key, stored.get(key));
  return out;
}

void load_optimizer_state(AdamW& optimizer, const fs::path& file) { optimizer.load_state(read_named_tensors(file), file.string()); }

// ---------------------------------------------------------------- finite loss

void check_finite_loss(double value, const std::string& program, const std::string& where, const std::string& hint) {
  if (!std::isfinite(value)) fail(program, ": loss is ", value, " ", where, "; stopping (", hint, ")");
}

// ---------------------------------------------------------------- metrics

MetricScalars scalars_by_type(const json& record) {
  MetricScalars out;
  const auto type = record.value("type", std::string("train"));
  out.step = record.value("step", int64_t{0});
  for (const auto& [key, value] : record.items())
    if (value.is_number() && key != "step") out.values.emplace_back(type + "/" + key, value.get<double>());
  return out;
}

MetricsLog::MetricsLog(fs::path path, uint64_t keep_bytes, bool enabled, const fs::path& tensorboard_dir,
                       int64_t resumed_step, MetricView view)
    : path_(std::move(path)), enabled_(enabled), view_(std::move(view)) {
  if (!enabled_) return;
  if (!path_.empty()) {
    if (fs::exists(path_)) fs::resize_file(path_, std::min<uint64_t>(keep_bytes, fs::file_size(path_)));
    out_.open(path_, std::ios::app | std::ios::binary);
    if (!out_) fail(path_.string(), ": cannot open for writing");
  }
  if (!tensorboard_dir.empty()) {
    tensorboard_ = std::make_unique<TensorBoardWriter>(tensorboard_dir);
    if (resumed_step > 0) tensorboard_->restart_at(resumed_step + 1);
  }
}

void MetricsLog::write(const json& record) {
  if (!enabled_) return;
  if (out_.is_open()) {
    out_ << record.dump() << '\n';
    out_.flush();
    if (!out_) fail(path_.string(), ": write failed (disk full?)");
  }
  if (tensorboard_) {
    const MetricScalars scalars = view_(record);
    for (const auto& [tag, value] : scalars.values) tensorboard_->add_scalar(tag, value, scalars.step);
  }
}

uint64_t MetricsLog::bytes() const { return enabled_ && !path_.empty() && fs::exists(path_) ? fs::file_size(path_) : 0; }

// ---------------------------------------------------------------- stopping

namespace {

std::atomic<bool> g_interrupted{false};

void on_interrupt(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

}  // namespace

StopRequest::StopRequest(double time_limit_seconds) : time_limit_(time_limit_seconds) {
  g_interrupted.store(false);
  previous_ = std::signal(SIGINT, on_interrupt);
}

StopRequest::~StopRequest() {
  std::signal(SIGINT, previous_ == SIG_ERR ? SIG_DFL : previous_);
}

bool StopRequest::interrupted() const { return g_interrupted.load(); }

bool StopRequest::time_up(double elapsed_seconds) const { return time_limit_ > 0 && elapsed_seconds >= time_limit_; }

// ---------------------------------------------------------------- resume folders

namespace {

fs::path temporary_sibling(const fs::path& dir) {
  std::random_device rd;
  return dir.parent_path() / ("." + dir.filename().string() + ".tmp" + std::to_string(rd()));
}

// Puts folder `from` at `to`. An existing `to` is exchanged atomically (renameat2 RENAME_EXCHANGE) and the old
// contents removed afterwards, so `to` is never missing or half-written.
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

constexpr const char* kResumeProgressFile = "progress.json";

}  // namespace

void write_folder_atomic(const fs::path& dir, const std::function<void(const fs::path& tmp)>& fill) {
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path());
  const auto tmp = temporary_sibling(dir);
  try {
    fs::create_directories(tmp);
    fill(tmp);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  install_folder(tmp, dir);
}

torch::Tensor generator_state(const at::Generator& generator) { return generator.get_state().clone(); }

void set_generator_state(at::Generator& generator, const torch::Tensor& state) {
  generator.set_state(state.to(torch::kUInt8).contiguous());
}

void ResumeFolder::save(const json& progress, const std::function<void(const fs::path& tmp)>& fill) const {
  write_folder_atomic(dir_, [&](const fs::path& tmp) {
    fill(tmp);
    write_file_atomic(tmp / kResumeProgressFile, progress.dump(2) + "\n");  // last: a folder without it is incomplete
  });
}

std::optional<json> ResumeFolder::progress() const {
  const auto file = dir_ / kResumeProgressFile;
  if (!fs::exists(dir_)) return std::nullopt;
  if (!fs::exists(file)) {
    warn(dir_.string(), " has no ", kResumeProgressFile, " (an incomplete checkpoint): ignoring it");
    return std::nullopt;
  }
  try {
    return json::parse(read_file(file));
  } catch (const json::exception& e) {
    warn(file.string(), ": not valid JSON (", e.what(), "): ignoring the checkpoint");
    return std::nullopt;
  }
}

void ResumeFolder::remove() const {
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

}  // namespace sapling
