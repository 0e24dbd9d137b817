// train_tokenizer(): epochs of Adam over a trainable tokenizer on the loop kit, with per-epoch checkpoints and resume.
#include "sapling/internal/tokenizer_training.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/internal/training_loop.hpp"

namespace sapling {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Chains of `split` ("all": every chain) with at least 2 residues with a CA (the rest hold no backbone environment).
std::vector<ChainStructure> tokenizer_chains(const StructureDataset& dataset, const std::string& split) {
  std::vector<size_t> indices;
  if (split != "all") {
    indices = dataset.indices(split);
  } else {
    for (size_t i = 0; i < dataset.size(); ++i) indices.push_back(i);
  }
  std::vector<ChainStructure> chains;
  for (size_t i : indices)
    if (dataset.metadata(i).observed >= 2) chains.push_back(dataset.chain(i));
  return chains;
}

std::string fixed_digits(double value, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << value;
  return os.str();
}

// How an epoch reports one stat of TrainableTokenizer::loss() or evaluate().
struct StatReport {
  bool sum = false;     // the epoch's value is the sum over its batches (counts), not the mean
  bool printed = true;  // false: in the metrics file and TensorBoard only
  int digits = 4;       // decimals on the progress line
};

// The counts vq_structure reports (restarted codes, residues); every other stat is a mean printed with 4 decimals.
std::map<std::string, StatReport> tokenizer_stat_reports() {
  return {{"restarted", StatReport{true, true, 0}}, {"residues", StatReport{true, false, 4}}};
}

// An epoch in progress: its chain order, the next batch's first position and the sums so far. With the weights,
// the Adam state and the generator it is all a resumed run needs to continue mid-epoch exactly.
struct EpochState {
  int64_t epoch = 1;
  std::vector<int64_t> order;  // empty: the epoch has not drawn its order yet
  int64_t next = 0;
  double loss_total = 0;
  int64_t batches = 0;
  std::map<std::string, double> totals;
};

// "train_loss" -> "train/loss", "valid_x" -> "valid/x", "seconds" -> "time/seconds", at the record's epoch.
MetricScalars tokenizer_scalars(const json& record) {
  MetricScalars out;
  out.step = record.value("epoch", int64_t{0});
  for (const auto& [key, value] : record.items()) {
    if (key == "epoch") continue;
    const auto cut = key.find('_');
    const bool split = cut != std::string::npos && (key.rfind("train_", 0) == 0 || key.rfind("valid_", 0) == 0);
    out.values.emplace_back(split ? key.substr(0, cut) + "/" + key.substr(cut + 1) : "time/" + key, value.get<double>());
  }
  return out;
}

class TokenizerRun {
 public:
  explicit TokenizerRun(const TokenizerTrainingSettings& settings)
      : s_(settings),
        weights_(settings.output.get_path("weights")),
        checkpoint_(tokenizer_checkpoint_dir(weights_)),
        epochs_(settings.train.get_int("epochs")),
        batch_chains_(settings.train.get_int("batch_chains")),
        generator_(at::detail::createCPUGenerator(static_cast<uint64_t>(settings.train.get_int("seed")))) {}

  TokenizerTrainingSummary run();

 private:
  void load_data();
  void build_tokenizer(const std::optional<json>& resumed);
  void build_training(const std::optional<json>& resumed);
  void save_checkpoint(const EpochState& state) const;
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  void end_epoch(EpochState& state);

  const TokenizerTrainingSettings& s_;
  fs::path weights_;
  ResumeFolder checkpoint_;
  int64_t epochs_, batch_chains_;
  at::Generator generator_;
  fs::path dataset_dir_;
  std::vector<ChainStructure> train_chains_, valid_chains_;
  bool valid_is_train_ = false;
  std::shared_ptr<StructureTokenizer> tokenizer_;
  TrainableTokenizer* trainable_ = nullptr;
  std::map<std::string, StatReport> reports_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<MetricsLog> metrics_;
  double seconds_before_ = 0;  // training time of the invocations before a resume
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void TokenizerRun::load_data() {
  dataset_dir_ = s_.data.get_path("dataset");
  if (!fs::exists(dataset_dir_ / "index.json"))
    fail(s_.data.origin("dataset"), ": [data] dataset '", dataset_dir_.string(),
         "' is not a prepared dataset; create it with `sapling prepare STRUCTURES... --out ", dataset_dir_.string(), "`");
  const StructureDataset dataset(dataset_dir_);
  const std::string split = s_.data.get_string("split");
  train_chains_ = tokenizer_chains(dataset, split);
  if (train_chains_.empty())
    fail(s_.data.origin("split"), ": [data] split '", split, "' of ", dataset_dir_.string(), " has no chain with 2 or more residues");
  valid_chains_ = tokenizer_chains(dataset, s_.data.get_string("valid_split"));
  valid_is_train_ = valid_chains_.empty();
  if (valid_is_train_) valid_chains_ = train_chains_;
}

// The tokenizer, from the checkpoint's weights when resuming; a fixed one is refused before any data is read.
void TokenizerRun::build_tokenizer(const std::optional<json>& resumed) {
  Options options = s_.tokenizer;
  if (resumed) options.set("weights", (checkpoint_.directory() / "weights.safetensors").string());
  tokenizer_ = StructureTokenizerRegistry::instance().find(s_.component).factory(options);
  trainable_ = tokenizer_->trainable();
  if (!trainable_)
    fail(s_.component_origin, ": [tokenizer] component '", s_.component,
         "' is a fixed tokenizer (nothing to train); train-tokenizer trains learned ones such as vq_structure");
  reports_ = tokenizer_stat_reports();
}

// Its optimiser (and the checkpoint's Adam state and random stream when resuming) and the metrics file.
void TokenizerRun::build_training(const std::optional<json>& resumed) {
  optimizer_ = make_adam(trainable_->parameters(), s_.train.get_float("lr"));
  uint64_t metrics_bytes = 0;
  int64_t epochs_done = 0;
  if (resumed) {
    const fs::path dir = checkpoint_.directory();
    load_optimizer_state(*optimizer_, dir / "optimizer.safetensors");
    const SafetensorsFile random(dir / "generator.safetensors");
    set_generator_state(generator_, random.get("generator"));
    metrics_bytes = progress_field<uint64_t>(*resumed, "metrics_bytes", dir / "progress.json");
    seconds_before_ = progress_field<double>(*resumed, "seconds", dir / "progress.json");
    epochs_done = progress_field<int64_t>(*resumed, "epoch", dir / "progress.json") - 1;
  }
  fs::path metrics_file;
  if (s_.output.has("metrics")) {
    metrics_file = s_.output.get_path("metrics");
    if (metrics_file.has_parent_path()) ensure_writable_dir(metrics_file.parent_path());
  }
  const fs::path tensorboard = s_.output.has("tensorboard") ? s_.output.get_path("tensorboard") : fs::path();
  metrics_ = std::make_unique<MetricsLog>(metrics_file, metrics_bytes, true, tensorboard, epochs_done, tokenizer_scalars);
}

void TokenizerRun::save_checkpoint(const EpochState& state) const {
  const double seconds = seconds_before_ + elapsed();
  json progress{{"epoch", state.epoch},          {"order", state.order},       {"next", state.next},
                {"loss_total", state.loss_total}, {"batches", state.batches},   {"totals", state.totals},
                {"seconds", seconds},             {"metrics_bytes", metrics_->bytes()}};
  checkpoint_.save(progress, [&](const fs::path& tmp) {
    trainable_->save_weights(tmp / "weights.safetensors");
    save_safetensors(tmp / "optimizer.safetensors", optimizer_->state(), {{"content", "sapling AdamW state"}});
    save_safetensors(tmp / "generator.safetensors", {{"generator", generator_state(generator_)}},
                     {{"content", "CPU generator state"}});
  });
}

// Evaluates, writes the weights, the metrics record and the progress line of a finished epoch.
void TokenizerRun::end_epoch(EpochState& state) {
  trainable_->set_training(false);
  const std::map<std::string, double> quality = trainable_->evaluate(valid_chains_);
  trainable_->save_weights(weights_);
  const double seconds = seconds_before_ + elapsed();
  const double batches = static_cast<double>(state.batches);
  json record{{"epoch", state.epoch}, {"train_loss", state.loss_total / batches}, {"seconds", seconds}};
  std::ostringstream line;
  line << "epoch " << state.epoch << "/" << epochs_ << "  loss " << fixed_digits(state.loss_total / batches, 4);
  auto report = [&](const std::string& name) {
    const auto it = reports_.find(name);
    return it == reports_.end() ? StatReport{} : it->second;
  };
  for (const auto& [name, total] : state.totals) {
    const auto how = report(name);
    const double v = how.sum ? total : total / batches;
    record["train_" + name] = v;
    if (how.printed) line << "  " << name << " " << fixed_digits(v, how.digits);
  }
  for (const auto& [name, v] : quality) {
    record["valid_" + name] = v;
    if (report(name).printed) line << "  valid " << name << " " << fixed_digits(v, 4);
  }
  line << "  " << fixed_digits(seconds, 1) << " s";
  std::cout << line.str() << std::endl;
  metrics_->write(record);
  state = EpochState{state.epoch + 1};
}

TokenizerTrainingSummary TokenizerRun::run() {
  TokenizerTrainingSummary summary;
  summary.weights = weights_;
  ensure_writable_dir(weights_.has_parent_path() ? weights_.parent_path() : fs::path("."));
  std::optional<json> resumed = checkpoint_.progress();
  if (resumed && !s_.resume)
    fail(checkpoint_.directory().string(), " holds an unfinished run of ", weights_.string(),
         "; pass --resume to continue it, or remove the folder to start again");
  if (!resumed && s_.resume) std::cout << "no checkpoint at " << checkpoint_.directory().string() << ": starting a new run" << std::endl;
  build_tokenizer(resumed);
  load_data();
  build_training(resumed);

  EpochState state;
  if (resumed) {
    const fs::path file = checkpoint_.directory() / "progress.json";
    state.epoch = progress_field<int64_t>(*resumed, "epoch", file);
    state.order = progress_field<std::vector<int64_t>>(*resumed, "order", file);
    state.next = progress_field<int64_t>(*resumed, "next", file);
    state.loss_total = progress_field<double>(*resumed, "loss_total", file);
    state.batches = progress_field<int64_t>(*resumed, "batches", file);
    state.totals = progress_field<std::map<std::string, double>>(*resumed, "totals", file);
    summary.resumed_from_epoch = state.epoch;
  }
  int64_t num_parameters = 0;
  for (const auto& p : trainable_->parameters()) num_parameters += p.numel();
  const double lr = s_.train.get_float("lr");
  std::cout << "train-tokenizer: " << s_.component << " (" << tokenizer_->num_states() << " states, " << num_parameters
            << " parameters) on " << train_chains_.size() << " chains of " << dataset_dir_.string() << " (split "
            << s_.data.get_string("split") << "), evaluated on " << valid_chains_.size()
            << (valid_is_train_ ? " training chains (no valid split)" : " valid chains") << "; " << epochs_
            << " epochs of batches of " << batch_chains_ << " chains, Adam lr " << lr << ", seed "
            << s_.train.get_int("seed") << std::endl;
  if (resumed)
    std::cout << "resuming from " << checkpoint_.directory().string() << " (epoch " << state.epoch << ", chain "
              << state.next << ")" << std::endl;

  // The seed drives the chain order and every random draw of the tokenizer's training (codebook starts and
  // restarts); the tokenizer's own `seed` option fixes its initial weights.
  const StopRequest stop(s_.time_limit);
  start_ = std::chrono::steady_clock::now();  // the time limit counts training, not loading
  while (state.epoch <= epochs_) {
    trainable_->set_training(true);
    if (state.order.empty()) {
      const torch::Tensor order = torch::randperm(static_cast<int64_t>(train_chains_.size()), generator_, torch::kInt64);
      state.order.assign(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + order.numel());
    }
    const auto count = static_cast<int64_t>(state.order.size());
    while (state.next < count) {
      std::vector<ChainStructure> batch;
      for (int64_t k = state.next; k < std::min(count, state.next + batch_chains_); ++k)
        batch.push_back(train_chains_[static_cast<size_t>(state.order[static_cast<size_t>(k)])]);
      std::map<std::string, double> stats;
      optimizer_->zero_grad();
      const torch::Tensor loss = trainable_->loss(batch, generator_, stats);
      const double value = loss.item<double>();
      check_finite_loss(value, "train-tokenizer", "in epoch " + std::to_string(state.epoch), "lower train.lr?");
      loss.backward();
      optimizer_->step();
      state.loss_total += value;
      for (const auto& [name, v] : stats) state.totals[name] += v;
      ++state.batches;
      state.next += batch_chains_;
      if (stop.interrupted() && state.next < count) {
        save_checkpoint(state);
        std::cout << "interrupted in epoch " << state.epoch << ": checkpoint " << checkpoint_.directory().string()
                  << " (rerun with --resume to continue)" << std::endl;
        summary.interrupted = true;
        summary.checkpoint = checkpoint_.directory();
        summary.epochs = state.epoch - 1;
        return summary;
      }
    }
    end_epoch(state);
    const double elapsed_here = elapsed();
    summary.epochs = state.epoch - 1;
    if (state.epoch > epochs_) break;
    save_checkpoint(state);
    if (stop.interrupted() || stop.time_up(elapsed_here)) {
      if (stop.interrupted()) {
        std::cout << "interrupted after epoch " << summary.epochs;
        summary.interrupted = true;
      } else {
        std::cout << "time limit of " << stop.time_limit() << " s reached";
        summary.time_limited = true;
      }
      std::cout << ": checkpoint " << checkpoint_.directory().string() << " (rerun with --resume to continue)" << std::endl;
      summary.checkpoint = checkpoint_.directory();
      break;
    }
  }
  if (summary.checkpoint.empty()) checkpoint_.remove();
  std::cout << "wrote " << weights_.string() << " after " << summary.epochs << " epochs" << std::endl;
  return summary;
}

}  // namespace

fs::path tokenizer_checkpoint_dir(const fs::path& weights) {
  fs::path dir = weights;
  dir.replace_extension(".checkpoint");
  return dir;
}

TokenizerTrainingSummary train_tokenizer(const TokenizerTrainingSettings& settings) {
  TokenizerRun run(settings);
  return run.run();
}

}  // namespace sapling
