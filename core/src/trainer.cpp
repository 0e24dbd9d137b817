// The training loop: accumulation, data parallelism, schedule, validation, metrics, checkpoints and resume.
#include <fstream>
#include <nlohmann/json.hpp>

#include "sapling/compute_dtype.hpp"
#include "sapling/internal/distributed.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"
#include "sapling/internal/model_card.hpp"
#include "sapling/internal/optimizer.hpp"
#include "sapling/packing.hpp"
#include "sapling/progress.hpp"
#include "sapling/internal/tensorboard.hpp"
#include "sapling/internal/training.hpp"
#include "sapling/internal/training_checkpoint.hpp"
#include "trainer_setup.hpp"

namespace sapling {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace training;

namespace {

// Stream ids for mix_seed, so training, validation and dropout draws never overlap.
constexpr uint64_t kValidationEpoch = 0x7fffffffULL;
constexpr uint64_t kDropoutStream = 0xd50bULL;

// Micro-batches per optimiser step on this process: [train] accumulate, or derived from [train] global_batch (proteins
// per optimiser step over all processes), so that a recipe trains with the same step batch on any number of processes.
int64_t accumulation_steps(const Options& train, const Options& data, int world_size) {
  const int64_t global_batch = train.get_int("global_batch");
  if (global_batch == 0) return train.get_int("accumulate");
  if (train.origin("accumulate") != "default")
    fail(train.origin("global_batch"), ": [train] global_batch = ", global_batch, " and accumulate = ",
         train.get_int("accumulate"), " (", train.origin("accumulate"),
         ") both set the step batch; keep one (--set train.global_batch=0 uses accumulate)");
  if (data.get_string("batching") != "proteins")
    fail(train.origin("global_batch"), ": [train] global_batch counts proteins, which needs [data] batching = "
         "\"proteins\" (batching = \"", data.get_string("batching"), "\"); use accumulate instead");
  const int64_t per_micro_batch = data.get_int("proteins_per_batch") * world_size;
  if (global_batch % per_micro_batch != 0)
    fail(train.origin("global_batch"), ": [train] global_batch = ", global_batch, " is not a multiple of proteins_per_batch (",
         data.get_int("proteins_per_batch"), ") x WORLD_SIZE (", world_size, ") = ", per_micro_batch,
         ": run on a world size that divides it, or change global_batch");
  return global_batch / per_micro_batch;
}

std::string digest(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

// metrics.jsonl: one JSON object per line, flushed as written; truncated to a
// checkpoint's length on resume so no step is logged twice. The same numbers go
// to TensorBoard event files in `tensorboard/` as "<type>/<key>" scalars (a
// resumed run's file tells TensorBoard to drop the earlier files' later steps).
class MetricsLog {
 public:
  MetricsLog(fs::path path, uint64_t keep_bytes, bool enabled, const fs::path& tensorboard_dir, int64_t resumed_step)
      : path_(std::move(path)), enabled_(enabled) {
    if (!enabled_) return;
    if (fs::exists(path_)) fs::resize_file(path_, std::min<uint64_t>(keep_bytes, fs::file_size(path_)));
    out_.open(path_, std::ios::app | std::ios::binary);
    if (!out_) fail(path_.string(), ": cannot open for writing");
    tensorboard_ = std::make_unique<TensorBoardWriter>(tensorboard_dir);
    if (resumed_step > 0) tensorboard_->restart_at(resumed_step + 1);
  }
  void write(const json& line) {
    if (!enabled_) return;
    out_ << line.dump() << '\n';
    out_.flush();
    if (!out_) fail(path_.string(), ": write failed (disk full?)");
    const auto type = line.value("type", std::string("train"));
    const auto step = line.value("step", int64_t{0});
    for (const auto& [key, value] : line.items())
      if (value.is_number() && key != "step") tensorboard_->add_scalar(type + "/" + key, value.get<double>(), step);
  }
  uint64_t bytes() const { return enabled_ && fs::exists(path_) ? fs::file_size(path_) : 0; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool enabled_;
  std::ofstream out_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

// Running sums of a step's (or a validation pass's) losses.
struct LossTally {
  double total = 0;
  int64_t batches = 0;
  std::map<std::string, double> terms;
  std::map<std::string, double> kept, candidates;
  int64_t residues = 0, proteins = 0;
  int64_t tokens = 0, real_tokens = 0;  // the rows' tokens with and without padding

  void add(const MicroBatchLoss& loss, const MicroBatch& batch) {
    total += loss.combined.total.item<double>();
    ++batches;
    for (const auto& [name, value] : loss.combined.terms) terms[name] += value;
    for (const auto& [name, count] : loss.combined.counts)
      if (loss.candidates.count(name)) kept[name] += static_cast<double>(count);
    for (const auto& [name, count] : loss.candidates) candidates[name] += static_cast<double>(count);
    residues += batch.residues;
    proteins += batch.proteins;
    tokens += batch.ids.numel();
    real_tokens += batch.mask.sum().item<int64_t>();
  }

  // Term names without values: a process with no micro-batch of its own
  // still takes part in reduce() with the same buffer layout as the others.
  void add_names(const MicroBatchLoss& loss) {
    for (const auto& [name, value] : loss.combined.terms) terms[name] += 0.0;
    for (const auto& [name, count] : loss.candidates) {
      kept[name] += 0.0;
      candidates[name] += 0.0;
    }
  }

  // Sums over processes; every process must hold the same names (see add_names).
  void reduce(DataParallel& dp) {
    std::vector<double> values{total, static_cast<double>(batches), static_cast<double>(residues),
                               static_cast<double>(proteins), static_cast<double>(tokens), static_cast<double>(real_tokens)};
    for (auto* map : {&terms, &kept, &candidates})
      for (const auto& kv : *map) values.push_back(kv.second);
    auto t = torch::tensor(values, torch::kFloat64);
    dp.sum({t});
    // Float32 transport is exact for counts below 2^24 and loses nothing that matters in means.
    size_t i = 0;
    total = t[i++].item<double>();
    batches = static_cast<int64_t>(std::llround(t[i++].item<double>()));
    residues = static_cast<int64_t>(std::llround(t[i++].item<double>()));
    proteins = static_cast<int64_t>(std::llround(t[i++].item<double>()));
    tokens = static_cast<int64_t>(std::llround(t[i++].item<double>()));
    real_tokens = static_cast<int64_t>(std::llround(t[i++].item<double>()));
    for (auto* map : {&terms, &kept, &candidates})
      for (auto& kv : *map) kv.second = t[static_cast<int64_t>(i++)].item<double>();
  }

  // Mean total and terms per micro-batch, plus kept fractions of the selected terms.
  json summary() const {
    json out;
    const double n = static_cast<double>(std::max<int64_t>(batches, 1));
    out["loss"] = total / n;
    // Share of the rows' tokens that are padding (compute spent on nothing).
    if (tokens > 0) out["padding"] = 1.0 - static_cast<double>(real_tokens) / static_cast<double>(tokens);
    for (const auto& [name, value] : terms) out[name] = value / n;
    for (const auto& [name, count] : kept) {
      const double all = candidates.count(name) ? candidates.at(name) : 0.0;
      if (all > 0) out["kept." + name] = count / all;
    }
    return out;
  }
};

struct Plan {
  std::vector<size_t> train_chains, valid_chains;
  std::vector<int64_t> train_lengths, valid_lengths;  // after cropping
  BatchPlanSettings batching;
  int64_t max_length = 0;
  int64_t pack_row_tokens = 0;  // batching = packed: 0 = chosen per micro-batch (choose_row_tokens)
  int64_t accumulate = 1;
  int64_t micro_per_step = 1;  // accumulate x processes
  int64_t steps_per_epoch = 0, total_steps = 0, warmup = 0;
  uint64_t seed = 0;
};

class Trainer {
 public:
  Trainer(const Recipe& recipe, const TrainRunOptions& run)
      : recipe_(recipe), run_(run), train_(recipe.settings("train")), optim_(recipe.settings("optim")),
        launch_(launch_environment()),
        // Before the process group: a world size that does not divide [train] global_batch fails at once.
        accumulate_(accumulation_steps(train_, recipe.settings("data"), launch_.world_size)),
        device_(process_device(train_.get_string("device"), launch_, "[train] device")),
        dp_(launch_, train_.get_float("distributed_timeout"),
            resolve_backend(train_.get_string("backend"), device_, "[train] backend"), device_) {}

  TrainSummary run();
  void inspect(const fs::path& file);

 private:
  void plan_data();
  void prepare_output();
  void build_optimizer();
  void restore(const fs::path& checkpoint);
  // `packed` false: the padded layout even with batching = "packed" (inspect's exactness check).
  MicroBatch micro_batch(const std::vector<size_t>& chains, const std::vector<size_t>& positions, uint64_t epoch,
                         uint64_t index, bool packed = true);
  void trace_gradients(const MicroBatch& batch, const std::string& prefix, NamedTensors& trace);
  json train_step();
  json validate();
  void after_validation(const json& metrics, int64_t step);
  void save_checkpoint();
  void set_learning_rates(int64_t step);
  std::string model_card(const std::string& checkpoint, const json& validation) const;
  NamedTensors heads() const { return head_tensors(setup_.losses); }

  const Recipe& recipe_;
  TrainRunOptions run_;
  Options train_, optim_;
  LaunchEnvironment launch_;
  int64_t accumulate_;    // micro-batches per optimiser step on this process
  torch::Device device_;  // this process's device (cuda:LOCAL_RANK with CUDA)
  DataParallel dp_;
  TrainingSetup setup_;
  Plan plan_;
  std::unique_ptr<AdamW> optimizer_;
  TrainingProgress progress_;
  std::vector<std::vector<size_t>> epoch_batches_;
  int64_t planned_epoch_ = -1;
  fs::path out_, resume_from_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<CheckpointStore> checkpoints_;
  TrainSummary summary_;
};

void Trainer::plan_data() {
  const auto data = recipe_.settings("data");
  auto& source = *setup_.data;
  plan_.seed = static_cast<uint64_t>(train_.get_int("seed"));
  // BOS and EOS take two of the model's positions.
  plan_.max_length = std::min<int64_t>(data.get_int("max_length"), setup_.model->max_tokens() - 2);
  plan_.batching.mode = parse_batching(data.get_string("batching"));
  if (plan_.batching.mode == Batching::Packed)
    for (const auto* encoder : {setup_.model.get(), setup_.reference.get()})
      if (encoder && !encoder->supports_packing())
        fail("[data] batching = \"packed\": the ", encoder->family(),
             " encoder does not support packed rows (supports_packing() is false); use \"tokens\"");
  plan_.batching.proteins_per_batch = data.get_int("proteins_per_batch");
  plan_.batching.tokens_per_batch = data.get_int("tokens_per_batch");
  plan_.batching.sort_window = data.get_int("sort_window");
  plan_.pack_row_tokens = data.get_int("pack_row_tokens");
  auto lengths = [&](const std::vector<size_t>& chains) {
    std::vector<int64_t> out;
    for (size_t c : chains) out.push_back(std::min(source.length(c), plan_.max_length));
    return out;
  };
  const auto train_split = data.get_string("train_split");
  plan_.train_chains = source.chains(train_split);
  if (plan_.train_chains.empty())
    fail(source.name(), ": no chains in split '", train_split, "' after the [data] filters",
         data.get_bool("high_quality_only") ? " (high_quality_only = true)" : "");
  plan_.train_lengths = lengths(plan_.train_chains);
  const auto valid_split = data.get_string("valid_split");
  if (!valid_split.empty()) {
    plan_.valid_chains = source.chains(valid_split);
    plan_.valid_lengths = lengths(plan_.valid_chains);
    if (plan_.valid_chains.empty()) warn("[data] valid_split '", valid_split, "' has no chains: training without validation");
  }
  plan_.accumulate = accumulate_;
  plan_.micro_per_step = plan_.accumulate * dp_.world_size();
  const auto first_epoch = plan_epoch(plan_.train_lengths, plan_.batching, plan_.seed, 0);
  plan_.steps_per_epoch = static_cast<int64_t>(first_epoch.size()) / plan_.micro_per_step;
  if (plan_.steps_per_epoch == 0)
    fail("an epoch has ", first_epoch.size(), " micro-batches, fewer than accumulate x processes = ", plan_.micro_per_step,
         ": lower [train] accumulate or [data] proteins_per_batch / tokens_per_batch");
  const int64_t from_epochs =
      static_cast<int64_t>(std::ceil(train_.get_float("epochs") * static_cast<double>(plan_.steps_per_epoch)));
  plan_.total_steps = run_.max_steps > 0 ? run_.max_steps : train_.get_int("max_steps") > 0 ? train_.get_int("max_steps") : from_epochs;
  const int64_t warmup_steps = optim_.get_int("warmup_steps");
  plan_.warmup = warmup_steps >= 0 ? warmup_steps
                                   : static_cast<int64_t>(std::llround(optim_.get_float("warmup_epochs") *
                                                                       static_cast<double>(plan_.steps_per_epoch)));
  plan_.warmup = std::min(plan_.warmup, plan_.total_steps);
}

void Trainer::prepare_output() {
  out_ = run_.out;
  if (out_.empty()) {
    const auto configured = train_.get_string("output");
    out_ = configured.empty() ? fs::path("runs") / recipe_.path().stem() : fs::path(configured);
  }
  checkpoints_ = std::make_unique<CheckpointStore>(out_);
  const auto latest = checkpoints_->latest();
  if (latest && !run_.resume)
    fail(out_.string(), " already holds a run (checkpoint ", latest->filename().string(),
         "); pass --resume to continue it, or choose another --out");
  if (dp_.is_main()) {
    ensure_writable_dir(out_);  // creates it; one error naming the folder when it cannot
    // Checkpoints hold the weights, the heads and two AdamW moments (float32):
    // refuse to start when even one round of them cannot fit.
    int64_t parameters = 0;
    for (const auto& p : trainable_parameters(setup_)) parameters += p.second.numel();
    const auto needed = static_cast<uintmax_t>(parameters) * 4u * 3u * static_cast<uintmax_t>(train_.get_int("keep_checkpoints") + 2);
    const auto available = fs::space(out_).available;
    if (available < needed)
      fail(out_.string(), ": ", available / (1 << 20), " MiB free but checkpoints need about ", needed / (1 << 20),
           " MiB (", parameters, " parameters); free space or lower [train] keep_checkpoints");
    write_file_atomic(out_ / "recipe.toml", "# resolved recipe of this run (sapling train " + recipe_.path().string() +
                                                 ")\n" + recipe_.resolved_text());
  }
  dp_.barrier();
  progress_.recipe_digest = digest(recipe_.identity_text());
  if (latest && run_.resume) restore(*latest);
  else if (run_.resume) info("no checkpoint in ", (out_ / "checkpoints").string(), ": starting a new run");
  metrics_ = std::make_unique<MetricsLog>(out_ / "metrics.jsonl", progress_.metrics_bytes, dp_.is_main(),
                                          out_ / "tensorboard", progress_.step);
}

void Trainer::build_optimizer() {
  std::map<const void*, std::string> names;
  for (const auto& [name, tensor] : trainable_parameters(setup_)) names[tensor.unsafeGetTensorImpl()] = name;
  const double decay = optim_.get_float("weight_decay");
  // decay = "all" (published): the 1-D groups decay too; the groups stay apart so checkpoints keep one layout.
  const double decay_1d = optim_.get_string("decay") == "all" ? decay : 0.0;
  ParameterGroup plm{"plm", {}, optim_.get_float("lr"), decay},
      plm_1d{"plm_1d", {}, optim_.get_float("lr"), decay_1d};
  ParameterGroup head{"heads", {}, optim_.get_float("head_lr"), decay},
      head_1d{"heads_1d", {}, optim_.get_float("head_lr"), decay_1d};
  const auto groups = setup_.model->parameter_groups();
  for (const auto& t : groups.decay) plm.parameters.push_back({names.at(t.unsafeGetTensorImpl()), t});
  for (const auto& t : groups.no_decay) plm_1d.parameters.push_back({names.at(t.unsafeGetTensorImpl()), t});
  for (const auto& loss : setup_.losses)
    for (const auto& p : loss.loss->parameters()) {
      if (!p.requires_grad()) continue;
      // Biases, norms and the temperature: the 1-D group, as for the pLM.
      (p.dim() < 2 ? head_1d : head).parameters.push_back({names.at(p.unsafeGetTensorImpl()), p});
    }
  const auto betas = optim_.get_float_list("betas");
  if (betas.size() != 2 || betas[0] < 0 || betas[0] >= 1 || betas[1] < 0 || betas[1] >= 1)
    fail(optim_.origin("betas"), ": [optim] betas must be two values in [0, 1)");
  AdamWSettings settings{betas[0], betas[1], optim_.get_float("eps")};
  optimizer_ = std::make_unique<AdamW>(std::vector<ParameterGroup>{plm, plm_1d, head, head_1d}, settings);
}

void Trainer::restore(const fs::path& checkpoint) {
  progress_ = CheckpointStore::read_progress(checkpoint);
  if (progress_.recipe_digest != digest(recipe_.identity_text()))
    warn("resuming ", checkpoint.string(), " with a recipe that differs from the one it was trained with (",
         (out_ / "recipe.toml").string(), ")");
  // Weights first: load_pretrained replaces the modules, so the optimiser is built afterwards.
  setup_.model->load_pretrained(checkpoint);
  setup_.model->to(torch::kFloat32);
  setup_.model->to(setup_.device);
  setup_.model->train();
  load_heads(setup_.losses, checkpoint / kHeadsFile);
  summary_.resumed_from = progress_.step;
  resume_from_ = checkpoint;
  info("resuming from ", checkpoint.string(), " (step ", progress_.step, ")");
}

MicroBatch Trainer::micro_batch(const std::vector<size_t>& chains, const std::vector<size_t>& positions, uint64_t epoch,
                                uint64_t index, bool packed) {
  std::vector<TrainingExample> examples;
  for (size_t p : positions) examples.push_back(setup_.data->example(chains[p]));
  auto generator = make_generator(mix_seed(plan_.seed, epoch, index));
  // Dropout (where a family has it) draws from the global generator: reseed it per micro-batch too.
  torch::manual_seed(mix_seed(plan_.seed ^ kDropoutStream, epoch, index));
  auto batch = collate(examples, setup_.model->tokenizer(), plan_.max_length, setup_.masking,
                       setup_.data->token_layout(), generator);
  // Packing re-lays the collated batch (masks already drawn), so the same proteins give the same losses either way.
  if (packed && plan_.batching.mode == Batching::Packed)
    batch = pack_micro_batch(batch, plan_.pack_row_tokens, setup_.model->tokenizer().pad_id());
  return batch;
}

void Trainer::set_learning_rates(int64_t step) {
  const double factor = lr_factor(step, plan_.warmup, plan_.total_steps, parse_decay_schedule(optim_.get_string("schedule")),
                                  optim_.get_float("min_lr_ratio"));
  for (auto& group : optimizer_->groups()) group.lr = group.peak_lr * factor;
}

json Trainer::train_step() {
  if (planned_epoch_ != progress_.epoch) {
    epoch_batches_ = plan_epoch(plan_.train_lengths, plan_.batching, plan_.seed, progress_.epoch);
    planned_epoch_ = progress_.epoch;
  }
  if (progress_.batch_in_epoch + plan_.micro_per_step > static_cast<int64_t>(epoch_batches_.size())) {
    ++progress_.epoch;  // the remainder of an epoch that does not fill a step is skipped
    progress_.batch_in_epoch = 0;
    epoch_batches_ = plan_epoch(plan_.train_lengths, plan_.batching, plan_.seed, progress_.epoch);
    planned_epoch_ = progress_.epoch;
  }
  set_learning_rates(progress_.step);
  const auto start = std::chrono::steady_clock::now();
  LossTally tally;
  for (int64_t j = 0; j < plan_.accumulate; ++j) {
    // This process's contiguous share of the step's micro-batches.
    const int64_t index = progress_.batch_in_epoch + dp_.rank() * plan_.accumulate + j;
    const auto batch = micro_batch(plan_.train_chains, epoch_batches_[static_cast<size_t>(index)],
                                   static_cast<uint64_t>(progress_.epoch), static_cast<uint64_t>(index));
    auto loss = compute_losses(setup_, batch);
    (loss.combined.total / static_cast<double>(plan_.accumulate)).backward();
    tally.add(loss, batch);
  }
  std::vector<torch::Tensor> grads;
  for (auto& group : optimizer_->groups())
    for (auto& p : group.parameters) {
      // A parameter unused by this batch (e.g. a head with nothing to score) still takes part in the all-reduce.
      if (!p.tensor.grad().defined()) p.tensor.mutable_grad() = torch::zeros_like(p.tensor);
      grads.push_back(p.tensor.grad());
    }
  dp_.average(grads);
  const double grad_norm = clip_grad_norm(optimizer_->groups(), optim_.get_float("clip_grad_norm"));
  optimizer_->step();
  optimizer_->zero_grad();
  tally.reduce(dp_);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ++progress_.step;
  progress_.batch_in_epoch += plan_.micro_per_step;
  progress_.train_seconds += seconds;
  progress_.residues += tally.residues;

  json line = tally.summary();
  line["type"] = "train";
  line["step"] = progress_.step;
  line["epoch"] = static_cast<double>(progress_.epoch) +
                  static_cast<double>(progress_.batch_in_epoch) / static_cast<double>(epoch_batches_.size());
  line["lr"] = optimizer_->groups()[0].lr;
  line["head_lr"] = optimizer_->groups()[2].lr;
  line["grad_norm"] = grad_norm;
  line["residues"] = tally.residues;
  line["proteins"] = tally.proteins;
  line["residues_per_s"] = static_cast<double>(tally.residues) / std::max(seconds, 1e-9);
  for (const auto& head : setup_.losses)
    for (const auto& [name, value] : head.loss->metrics()) line[head.name + "." + name] = value;
  return line;
}

json Trainer::validate() {
  const auto all = plan_epoch(plan_.valid_lengths, plan_.batching, plan_.seed, static_cast<int64_t>(kValidationEpoch));
  const int64_t cap = train_.get_int("valid_max_batches");
  const bool select = train_.get_bool("valid_selection");
  const int64_t reference_passes_before = setup_.reference_passes;
  const int64_t count = cap > 0 ? std::min<int64_t>(cap, static_cast<int64_t>(all.size())) : static_cast<int64_t>(all.size());
  setup_.model->eval();
  for (auto& head : setup_.losses) head.loss->eval();
  LossTally tally;
  {
    torch::NoGradGuard no_grad;
    for (int64_t i = dp_.rank(); i < count; i += dp_.world_size()) {
      const auto batch = micro_batch(plan_.valid_chains, all[static_cast<size_t>(i)], kValidationEpoch, static_cast<uint64_t>(i));
      tally.add(compute_losses(setup_, batch, select), batch);
    }
    if (tally.batches == 0 && count > 0) {
      const auto batch = micro_batch(plan_.valid_chains, all[0], kValidationEpoch, 0);
      tally.add_names(compute_losses(setup_, batch, select));
    }
  }
  setup_.model->train();
  for (auto& head : setup_.losses) head.loss->train();
  tally.reduce(dp_);
  json line = tally.summary();
  line["type"] = "valid";
  line["step"] = progress_.step;
  line["batches"] = tally.batches;
  line["residues"] = tally.residues;
  line["selection"] = select;
  line["reference_passes"] = setup_.reference_passes - reference_passes_before;  // this process's
  return line;
}

void Trainer::after_validation(const json& metrics, int64_t step) {
  const double loss = metrics.at("loss").get<double>();
  if (loss < progress_.best_valid) {
    progress_.best_valid = loss;
    progress_.best_step = step;
    progress_.validations_without_improvement = 0;
    if (dp_.is_main() && train_.get_bool("save_best")) {
      save_model_folder(out_ / "best", *setup_.model, heads(), model_card("best", metrics));
      summary_.best = out_ / "best";
    }
    dp_.barrier();
  } else {
    ++progress_.validations_without_improvement;
  }
}

std::string Trainer::model_card(const std::string& checkpoint, const json& validation) const {
  ModelCard card;
  card.family = setup_.model->family();
  const auto facts = setup_.model->card_facts();
  card.licence = facts.licence;
  card.trust_remote_code = facts.trust_remote_code;
  card.loading_note = facts.loading_note;
  const auto model = recipe_.component("model").second;
  card.base_model = model.has("path") ? model.get_path("path").string()
                    : model.has("preset") ? "preset " + model.get_string("preset")
                                          : "(built by the " + card.family + " plugin's defaults)";
  card.recipe = recipe_.path().string();
  card.resolved_recipe = recipe_.resolved_text();
  const auto data = recipe_.settings("data");
  if (data.has("dataset")) card.dataset = data.get_path("dataset").string();
  else if (data.has("sequences")) card.dataset = data.get_path("sequences").string();
  card.checkpoint = checkpoint;
  card.steps = progress_.step;
  if (validation.is_object())
    for (const auto& [k, v] : validation.items())
      if (v.is_number_float()) card.validation[k] = v.get<double>();
  return model_card_markdown(card);
}

void Trainer::save_checkpoint() {
  if (dp_.is_main()) {
    progress_.metrics_bytes = metrics_->bytes();
    checkpoints_->save(progress_, *setup_.model, heads(), optimizer_->state(), train_.get_int("keep_checkpoints"));
  }
  dp_.barrier();
}

TrainSummary Trainer::run() {
  const auto wall_start = std::chrono::steady_clock::now();
  setup_ = build_setup(recipe_, device_);
  plan_data();
  prepare_output();
  build_optimizer();
  if (!resume_from_.empty()) {
    SafetensorsFile stored(resume_from_ / "optimizer.safetensors");
    NamedTensors state;
    for (const auto& key : stored.keys()) state.emplace_back(key, stored.get(key));
    optimizer_->load_state(state, stored.path().string());
  }
  // Every process starts from rank 0's weights (they already agree when loaded from the same files).
  std::vector<torch::Tensor> parameters;
  for (const auto& p : trainable_parameters(setup_)) parameters.push_back(p.second);
  dp_.broadcast_from_main(parameters);

  const bool has_valid = !plan_.valid_chains.empty();
  const int64_t valid_every = train_.get_int("valid_every");
  const int64_t checkpoint_every = train_.get_int("checkpoint_every");
  const int64_t log_every = train_.get_int("log_every");
  const int64_t patience = train_.get_int("early_stop_patience");
  if (dp_.is_main()) {
    info("training ", setup_.model->family(), " (", trainable_parameters(setup_).size(), " tensors) on ",
         setup_.device.str(), " (",
         setup_.parameters == torch::kBFloat16
             ? std::string("bf16-pure: weights, activations and losses in bf16, float32 master weights in the optimiser")
             : describe_compute(setup_.autocast, setup_.device),
         "), ", dp_.world_size(),
         " process(es); ", setup_.data->describe());
    info("step batch: ", plan_.accumulate, " micro-batch(es) per process x ", dp_.world_size(), " process(es) (",
         backend_name(dp_.backend()), ")",
         plan_.batching.mode == Batching::Proteins
             ? " x " + std::to_string(plan_.batching.proteins_per_batch) + " proteins = " +
                   std::to_string(plan_.micro_per_step * plan_.batching.proteins_per_batch) + " proteins per optimiser step"
             : std::string(""),
         train_.get_int("global_batch") > 0 ? " ([train] global_batch)" : "");
    info(plan_.train_chains.size(), " training and ", plan_.valid_chains.size(), " validation chains; ",
         plan_.steps_per_epoch, " steps per epoch, ", plan_.total_steps, " steps, warm-up ", plan_.warmup,
         "; crops at ", plan_.max_length, " residues; output ", out_.string());
  }

  if (has_valid && progress_.step == 0) {
    const auto before = validate();
    metrics_->write(before);
    for (const auto& [k, v] : before.items())
      if (v.is_number_float()) summary_.valid_before[k] = v.get<double>();
  }
  std::unique_ptr<ProgressBar> bar;
  if (dp_.is_main()) bar = std::make_unique<ProgressBar>("train", static_cast<double>(plan_.total_steps - progress_.step), "steps");
  // This invocation's share, for its residues/s (a resumed run's totals include earlier ones).
  const int64_t residues_at_start = progress_.residues;
  const double seconds_at_start = progress_.train_seconds;
  json last_valid;
  while (progress_.step < plan_.total_steps) {
    auto line = train_step();
    if (progress_.step % log_every == 0 || progress_.step == plan_.total_steps) metrics_->write(line);
    if (bar) {
      char note[96];
      std::snprintf(note, sizeof(note), "loss %.4f", line["loss"].get<double>());
      bar->advance(1, note);
    }
    const bool last = progress_.step == plan_.total_steps;
    bool stop = false;
    if (has_valid && (last || (valid_every > 0 && progress_.step % valid_every == 0))) {
      last_valid = validate();
      metrics_->write(last_valid);
      after_validation(last_valid, progress_.step);
      stop = patience > 0 && progress_.validations_without_improvement >= patience;
      if (stop && dp_.is_main())
        info("early stop at step ", progress_.step, ": no validation improvement in ", patience, " validations");
    }
    if (last || stop || (checkpoint_every > 0 && progress_.step % checkpoint_every == 0)) save_checkpoint();
    if (stop) {
      summary_.stopped_early = true;
      break;
    }
  }
  if (bar) bar->finish();
  if (!last_valid.is_null())
    for (const auto& [k, v] : last_valid.items())
      if (v.is_number_float()) summary_.valid_after[k] = v.get<double>();

  summary_.out = out_;
  summary_.final = out_ / "final";
  summary_.steps = progress_.step;
  if (fs::exists(out_ / "best")) summary_.best = out_ / "best";
  if (dp_.is_main()) {
    // The last validation ran at this step when there was one (it runs at the last step and on early stop).
    const bool validated_here = !last_valid.is_null() && last_valid.value("step", int64_t{-1}) == progress_.step;
    save_model_folder(summary_.final, *setup_.model, heads(), model_card("final", validated_here ? last_valid : json()));
    json done = {{"steps", progress_.step},
                 {"resumed_from", summary_.resumed_from},
                 {"stopped_early", summary_.stopped_early},
                 {"best_step", progress_.best_step},
                 {"train_seconds", progress_.train_seconds},
                 {"residues", progress_.residues},
                 {"valid_before", summary_.valid_before},
                 {"valid_after", summary_.valid_after}};
    write_file_atomic(out_ / "summary.json", done.dump(2) + "\n");
  }
  dp_.barrier();
  summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double seconds_here = progress_.train_seconds - seconds_at_start;
  summary_.residues_per_second =
      seconds_here > 0 ? static_cast<double>(progress_.residues - residues_at_start) / seconds_here : 0.0;
  return summary_;
}

// Gradients of the micro-batch's total with respect to every trainable parameter, as "<prefix>grad.<name>".
void Trainer::trace_gradients(const MicroBatch& batch, const std::string& prefix, NamedTensors& trace) {
  const auto parameters = trainable_parameters(setup_);
  for (const auto& p : parameters) p.second.mutable_grad() = torch::Tensor();
  compute_losses(setup_, batch, true).combined.total.backward();
  for (const auto& [name, tensor] : parameters)
    if (tensor.grad().defined()) trace.emplace_back(prefix + "grad." + name, tensor.grad().to(torch::kCPU).clone());
  for (const auto& p : parameters) p.second.mutable_grad() = torch::Tensor();
}

void Trainer::inspect(const fs::path& file) {
  setup_ = build_setup(recipe_, device_);
  plan_data();
  const auto plan = plan_epoch(plan_.train_lengths, plan_.batching, plan_.seed, 0);
  const auto batch = micro_batch(plan_.train_chains, plan.front(), 0, 0);
  NamedTensors trace{{"batch.ids", batch.ids},
                     {"batch.mask", batch.mask.to(torch::kUInt8)},
                     {"batch.residue_mask", batch.residue_mask.to(torch::kUInt8)},
                     {"batch.mlm_labels", batch.mlm_labels},
                     {"batch.proteins", torch::tensor(batch.proteins, torch::kInt64)}};
  if (batch.structure_tokens.defined()) trace.emplace_back("batch.structure_tokens", batch.structure_tokens);
  if (batch.pgnn_embeddings.defined()) trace.emplace_back("batch.pgnn_embeddings", batch.pgnn_embeddings);
  for (const auto& [name, value] : heads()) trace.emplace_back("heads." + name, value.to(torch::kCPU, torch::kFloat32));
  for (const auto& [name, value] : head_tensors(setup_.reference_losses))
    trace.emplace_back("reference_heads." + name, value.to(torch::kCPU, torch::kFloat32));
  if (batch.segments.defined()) trace.emplace_back("batch.segments", batch.segments);
  {
    torch::NoGradGuard no_grad;
    compute_losses(setup_, batch, true, &trace);
  }
  if (plan_.batching.mode == Batching::Packed) {
    // The same micro-batch padded, and both layouts' gradients: what packing must not change
    // (tests/test_packing.cpp compares them residue by residue).
    const auto padded = micro_batch(plan_.train_chains, plan.front(), 0, 0, /*packed=*/false);
    NamedTensors unpacked{{"batch.ids", padded.ids}, {"batch.mask", padded.mask.to(torch::kUInt8)}};
    {
      torch::NoGradGuard no_grad;
      compute_losses(setup_, padded, true, &unpacked);
    }
    for (auto& [name, value] : unpacked) trace.emplace_back("padded." + name, value);
    trace_gradients(batch, "", trace);
    trace_gradients(padded, "padded.", trace);
  }
  save_safetensors(file, trace);
  info("wrote the first micro-batch's losses and intermediates (", trace.size(), " tensors, ", batch.proteins,
       " proteins, ", batch.residues, " residues) to ", file.string());
}

}  // namespace

void inspect_first_batch(const Recipe& recipe, const fs::path& file) {
  Trainer trainer(recipe, TrainRunOptions{});
  trainer.inspect(file);
}

TrainSummary train(const Recipe& recipe, const TrainRunOptions& options) {
  Trainer trainer(recipe, options);
  return trainer.run();
}

}  // namespace sapling
