// sapling_perf_mlm_train: times sapling's MLM train step (forward, MLM loss, backward, AdamW): mlm-train-cpu, and mlm-train-gpu with MFU (issue #7).
//
// Uses only the public core API and the plugins, as the trainer does: the pLM
// from load_sequence_encoder (esm2 plugin), mask_tokens (mask-only, 15%), the
// registered "mlm" loss (alignment plugin), AdamW from optimizer.hpp.
#include <torch/torch.h>

#include <sys/resource.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "sapling/internal/allocator.hpp"
#include "sapling/autocast.hpp"
#include "sapling/compute_dtype.hpp"
#include "sapling/error.hpp"
#include "sapling/fasta.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/masking.hpp"
#include "sapling/model_loading.hpp"
#include "sapling/internal/optimizer.hpp"
#include "sapling/plugin.hpp"
#include "sapling/safetensors.hpp"

namespace {

struct Args {
  std::string model, preset, fasta, dump, device = "cpu", dtype = "float32";
  double peak_tflops = 0;
  std::vector<std::filesystem::path> plugin_paths;
  int threads = 1, warmup = 2, steps = 5;
  int64_t batch = 8, tokens = 256;
  uint64_t seed = 0;
};

const char* kUsage =
    "usage: sapling_perf_mlm_train (--model DIR | --preset NAME) --fasta FILE [--threads 1] [--warmup 2]\n"
    "       [--steps 5] [--batch 8] [--tokens 256] [--seed 0] [--device cpu|cuda] [--dtype float32|bf16]\n"
    "       [--peak-tflops 790] [--plugin-path DIR]... [--dump FILE.safetensors]\n\n"
    "One MLM train step per iteration on a fixed batch: the first --batch sequences of FILE with at\n"
    "least --tokens - 2 residues, cropped; 15% of residues replaced by <mask> (no 80/10/10); forward,\n"
    "mean cross-entropy over masked residues, backward, AdamW (lr 1e-4, betas 0.9/0.95, wd 0.01 on\n"
    "matrices). Prints per-part times and residues/s over the timed steps. --dump writes the batch and\n"
    "the first step's logits (before any update) for perf/torch_esm2.py --mode parity.\n"
    "--preset builds a randomly initialised ESM2 of a released size (esm2_t33_650M_UR50D, ...) instead\n"
    "of loading one. --dtype bf16 runs the step under autocast (CUDA, or the CPU's bf16 units through\n"
    "oneDNN; weights and AdamW stay float32). The path that ran (device, dtype, CPU units) is printed,\n"
    "and the model FLOP/s (6 x parameters x tokens per second) as a fraction of the peak of that path\n"
    "(MFU): the peak is measured at start-up with one large matrix product in the step's dtype, or\n"
    "given by --peak-tflops (H100/H200 dense bf16: 790). Also printed: the process's peak resident memory.";

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::cout << kUsage << "\n";
      std::exit(0);
    }
    if (i + 1 >= argc) sapling::fail(key, ": missing value\n", kUsage);
    const std::string value = argv[++i];
    if (key == "--model") a.model = value;
    else if (key == "--fasta") a.fasta = value;
    else if (key == "--dump") a.dump = value;
    else if (key == "--preset") a.preset = value;
    else if (key == "--device") a.device = value;
    else if (key == "--dtype") a.dtype = value;
    else if (key == "--peak-tflops") a.peak_tflops = std::stod(value);
    else if (key == "--plugin-path") a.plugin_paths.emplace_back(value);
    else if (key == "--threads") a.threads = std::stoi(value);
    else if (key == "--warmup") a.warmup = std::stoi(value);
    else if (key == "--steps") a.steps = std::stoi(value);
    else if (key == "--batch") a.batch = std::stoll(value);
    else if (key == "--tokens") a.tokens = std::stoll(value);
    else if (key == "--seed") a.seed = std::stoull(value);
    else sapling::fail("unknown option ", key, "\n", kUsage);
  }
  if (a.model.empty() == a.preset.empty() || a.fasta.empty())
    sapling::fail("--fasta and one of --model or --preset are required\n", kUsage);
  if (a.device != "cpu" && a.device != "cuda") sapling::fail("--device must be cpu or cuda, not '", a.device, "'");
  if (a.dtype != "float32" && a.dtype != "bf16") sapling::fail("--dtype must be float32 or bf16, not '", a.dtype, "'");
  if (a.device == "cuda" && !torch::cuda::is_available())
    sapling::fail("--device cuda: this LibTorch has no CUDA device (build against a CUDA LibTorch, see docs/gpu/README.md)");
  if (a.threads < 1 || a.steps < 1 || a.warmup < 0 || a.batch < 1 || a.tokens < 3)
    sapling::fail("--threads, --steps, --batch must be positive, --warmup >= 0, --tokens >= 3");
  return a;
}

// Kernels are asynchronous on CUDA: wait for them before reading the clock.
void wait_for(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::shared_ptr<sapling::SequenceEncoder> open_model(const Args& args) {
  if (!args.preset.empty()) {
    const auto& entry = sapling::SequenceEncoderRegistry::instance().find("esm2");
    auto options = sapling::Options::defaults(entry.schema);
    options.set("preset", args.preset);
    return entry.factory(options);
  }
  return sapling::load_sequence_encoder(args.model);
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace sapling;
  tune_allocator_for_tensors();  // as the sapling CLI does: the step measured is the one `sapling train` runs
  const Args args = parse(argc, argv);
  torch::set_num_threads(args.threads);
  torch::manual_seed(static_cast<uint64_t>(args.seed));

  PluginManager::instance().load_search_path(args.plugin_paths);
  auto model = open_model(args);
  const torch::Device device(args.device);
  const auto dtype = resolve_compute_dtype(args.dtype, device);  // warns for bf16 on a CPU without the units
  const double peak_tflops = args.peak_tflops > 0 ? args.peak_tflops : measure_peak_tflops(device, dtype);
  model->to(device);
  model->train();
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  const auto& tokenizer = model->tokenizer();

  // Fixed batch: whole residues only (no specials), so the ids are the same in perf/torch_esm2.py.
  const int64_t residues_per_sequence = args.tokens - 2;
  std::vector<std::vector<int64_t>> encoded;
  for (const auto& record : read_fasta(args.fasta)) {
    if (static_cast<int64_t>(record.sequence.size()) < residues_per_sequence) continue;
    encoded.push_back(tokenizer.encode(record.sequence.substr(0, static_cast<size_t>(residues_per_sequence))));
    if (static_cast<int64_t>(encoded.size()) == args.batch) break;
  }
  if (static_cast<int64_t>(encoded.size()) < args.batch)
    fail(args.fasta, ": only ", encoded.size(), " sequences have ", residues_per_sequence, " residues; need ", args.batch);
  const auto batch = tokenizer.pad(encoded);
  const auto residue_mask = real_residue_mask(batch.ids, batch.mask, tokenizer);
  auto generator = make_generator(args.seed);
  const auto masked = mask_tokens(batch.ids, residue_mask, tokenizer, MaskingOptions{}, generator);
  const int64_t residues = residue_mask.sum().item<int64_t>();
  const int64_t predicted = masked.labels.ne(kIgnoreLabel).sum().item<int64_t>();
  const auto ids = masked.ids.to(device), attention_mask = batch.mask.to(device);

  const auto& mlm_entry = AlignmentLossRegistry::instance().find("mlm");
  LossContext context;
  context.model_width = model->hidden_size();
  auto mlm = mlm_entry.factory(Options::defaults(mlm_entry.schema), context);

  // The trainer's grouping: decay on the encoder's matrices, none on 1-D tensors; lr constant here.
  ParameterGroup decay{"plm", {}, 1e-4, 0.01, 1e-4}, no_decay{"plm_no_decay", {}, 1e-4, 0.0, 1e-4};
  const auto groups = model->parameter_groups();
  for (const auto& t : groups.decay) decay.parameters.push_back({"p" + std::to_string(decay.parameters.size()), t});
  for (const auto& t : groups.no_decay) no_decay.parameters.push_back({"n" + std::to_string(no_decay.parameters.size()), t});
  AdamW optimizer({decay, no_decay}, AdamWSettings{0.9, 0.95, 1e-8});

  LossInputs inputs;
  inputs.ids = ids;
  inputs.residue_mask = residue_mask.to(device);
  inputs.mlm_labels = masked.labels.to(device);
  ForwardRequest request;
  request.logits = true;

  // Process CPU time (all threads) beside wall time: on a loaded machine the wall clock also
  // counts the time other processes held the cores.
  double forward_s = 0, backward_s = 0, optimizer_s = 0, loss_value = 0;
  std::clock_t cpu_start = 0;
  wait_for(device);  // the copies to the device; each step ends waiting for its own kernels
  for (int step = 0; step < args.warmup + args.steps; ++step) {
    if (step == args.warmup) cpu_start = std::clock();
    auto t0 = std::chrono::steady_clock::now();
    torch::Tensor loss;
    EncoderOutput out;
    {
      AutocastGuard autocast(device, dtype);
      out = model->forward(ids, attention_mask, request);
      inputs.plm = &out;
      loss = mlm->compute(inputs).per_residue.at("mlm").mean();
    }
    wait_for(device);
    const double t_forward = seconds_since(t0);
    if (step == 0 && !args.dump.empty())
      save_safetensors(args.dump, {{"input_ids", masked.ids}, {"attention_mask", batch.mask.to(torch::kInt64)},
                                   {"labels", masked.labels}, {"logits", out.logits.detach().to(torch::kCPU, torch::kFloat32)}},
                       {{"producer", "sapling_perf_mlm_train"}, {"model", args.model.empty() ? args.preset : args.model}});
    t0 = std::chrono::steady_clock::now();
    optimizer.zero_grad();
    loss.backward();
    wait_for(device);
    const double t_backward = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    optimizer.step();
    wait_for(device);
    const double t_optimizer = seconds_since(t0);
    loss_value = loss.item<double>();
    if (step < args.warmup) continue;
    forward_s += t_forward, backward_s += t_backward, optimizer_s += t_optimizer;
  }
  const double total = forward_s + backward_s + optimizer_s;
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  const auto ms = [&](double s) { return std::to_string(static_cast<int64_t>(1000 * s / args.steps)); };
  std::cout << "sapling mlm-train: " << args.batch << " x " << batch.ids.size(1) << " tokens, " << residues
            << " residues/step, " << predicted << " masked, loss " << loss_value << "; per step: forward " << ms(forward_s)
            << " ms, backward " << ms(backward_s) << " ms, optimizer " << ms(optimizer_s) << " ms\n";
  std::cout << "residues/s: " << static_cast<double>(residues) * args.steps / total << " (" << torch::get_num_threads()
            << " threads, " << args.steps << " steps); per CPU-second: " << static_cast<double>(residues) * args.steps / cpu
            << "\n";
  // Model FLOP/s as BENCHMARKS.md counts them: 6 x parameters x tokens (padding included) per second.
  const double model_tflops = 6.0 * static_cast<double>(parameters) * static_cast<double>(ids.numel()) * args.steps / total / 1e12;
  std::cout << "path: " << describe_compute(dtype, device) << "; peak " << peak_tflops << " TFLOP/s ("
            << (args.peak_tflops > 0 ? "given" : "measured: one large matrix product") << ")\n";
  std::cout << "parameters: " << parameters << "; model TFLOP/s: " << model_tflops << "; MFU: "
            << 100.0 * model_tflops / peak_tflops << "% of " << peak_tflops;
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  std::cout << "; peak resident memory: " << usage.ru_maxrss / 1024 << " MiB (" << args.device << ", " << args.dtype << ")\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
