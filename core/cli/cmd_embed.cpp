// `sapling embed`: FASTA in, per-residue / mean / BOS embeddings and contacts out (safetensors or .npy).
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "sapling/compute_dtype.hpp"
#include "sapling/internal/embed.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/internal/hub_cache.hpp"
#include "sapling/log.hpp"
#include "sapling/model_loading.hpp"
#include "sapling/npy.hpp"
#include "sapling/safetensors.hpp"

namespace sapling::cli::embed_command {  // one namespace per command: the CLI is a unity build
namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Labels may hold characters that are awkward in file names ("sp|P1|X").
std::string file_safe(std::string s) {
  for (char& c : s)
    if (c == '/' || c == '\\' || c == '\0') c = '_';
  return s;
}

// --mfu: model FLOP/s against the measured peak of the path that ran. Forward FLOPs are counted as 2 x
// parameters x tokens (padding and specials included, attention's T^2 terms left out), the inference
// counterpart of the 6 x parameters x tokens that sapling_bench_mlm_train and BENCHMARKS.md use.
void report_model_flops(const SequenceEncoder& model, const EmbedResult& result, const EmbedOptions& options) {
  int64_t parameters = 0;
  for (const auto& p : model.parameters()) parameters += p.numel();
  const double model_tflops = 2.0 * static_cast<double>(parameters) * static_cast<double>(result.tokens) /
                              std::max(result.seconds, 1e-9) / 1e12;
  const double peak = measure_peak_tflops(options.device, options.dtype);
  info("parameters: ", parameters, "; tokens: ", result.tokens, "; model TFLOP/s: ", model_tflops, "; MFU: ",
       100.0 * model_tflops / peak, "% of ", peak, " TFLOP/s (", describe_compute(options.dtype, options.device),
       ", measured: one large matrix product)");
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("model", po::value<std::string>()->required(), "model folder (HF layout: config.json + safetensors), or a hub id in the local Hugging Face cache")(
      "fasta", po::value<std::string>()->required(), "input FASTA (plain or .gz); labels must be unique")(
      "out", po::value<std::string>()->required(), "output .safetensors file (or folder with --format npy)")(
      "include", po::value<std::string>()->default_value("mean"), "comma list of per_tok, mean, bos, contacts")(
      "repr-layers", po::value<std::string>()->default_value("-1"),
      "comma list of layers (0 = embeddings, -1 = last = final representation)")(
      "toks-per-batch", po::value<int64_t>()->default_value(4096), "padded tokens per forward pass (real tokens with --pack)")(
      "pack", po::bool_switch(), "pack several sequences per row, attention within each (no padding; not with contacts)")(
      "truncation", po::value<int64_t>()->default_value(-1),
      "residues per sequence (default: the model's limit, 1022 for ESM2)")(
      "long", po::value<std::string>()->default_value("truncate"),
      "sequences over the limit: truncate (warn), window (overlapping windows, averaged) or error")(
      "window-overlap", po::value<int64_t>()->default_value(-1), "residues shared by consecutive windows (default: half)")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu or cuda[:N]")(
      "dtype", po::value<std::string>()->default_value("auto"),
      "auto: bf16 autocast where the device has bf16 matrix units (CUDA; a CPU with AVX512-BF16 or AMX), float32 "
      "elsewhere (within the accuracy budget of docs/performance.md); fp32: float32 everywhere; bf16; fp16 (CUDA)")(
      "format", po::value<std::string>()->default_value("safetensors"), "safetensors or npy")(
      "mfu", po::bool_switch(),
      "after the run, measure the peak of the compute path (one large matrix product, about a second) and print "
      "the model FLOP/s (2 x parameters x tokens per second) as a fraction of it");
  add_encoder_option(desc);
  po::positional_options_description pos;
  po::variables_map vm;
  const std::string usage =
      "usage: sapling embed --model DIR --fasta FILE --out FILE.safetensors [--include per_tok,mean,bos,contacts]\n"
      "                     [--repr-layers -1,...] [--toks-per-batch 4096] [--pack] [--truncation 1022] [--long truncate|window|error]\n"
      "                     [--device cpu|cuda] [--dtype auto|fp32|bf16|fp16] [--format safetensors|npy] [--mfu]\n\n"
      "Output tensors: <label>/per_tok [L, D] (residues only), <label>/mean [D], <label>/bos [D],\n"
      "<label>/contacts [L, L]; <label> is the FASTA header up to the first space; with several\n"
      "layers each name gets '@<layer>'. ESM2's last layer is after the final LayerNorm; AMPLIFY's\n"
      "is the last block's output (before the final RMSNorm), as each model returns it.";
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);

  EmbedOptions options;
  options.include = split_list(vm["include"].as<std::string>());
  options.layers.clear();
  for (const auto& l : split_list(vm["repr-layers"].as<std::string>())) {
    try {
      size_t used = 0;
      options.layers.push_back(std::stoll(l, &used));
      if (used != l.size()) throw std::invalid_argument(l);
    } catch (const std::exception&) {
      fail("--repr-layers: '", l, "' is not an integer");
    }
  }
  if (options.layers.empty()) options.layers = {-1};
  options.tokens_per_batch = vm["toks-per-batch"].as<int64_t>();
  if (options.tokens_per_batch < 8) fail("--toks-per-batch must be at least 8");
  options.packed = vm["pack"].as<bool>();
  options.truncation = vm["truncation"].as<int64_t>();
  options.window_overlap = vm["window-overlap"].as<int64_t>();
  const auto policy = vm["long"].as<std::string>();
  if (policy == "truncate") options.policy = LongSequencePolicy::Truncate;
  else if (policy == "window") options.policy = LongSequencePolicy::Window;
  else if (policy == "error") options.policy = LongSequencePolicy::Error;
  else fail("--long '", policy, "': expected truncate, window or error");
  const auto device = vm["device"].as<std::string>();
  options.device = parse_device(device);
  if (options.device.is_cuda() && !torch::cuda::is_available()) fail("--device ", device, ": CUDA is not available in this build or machine");
  options.dtype = resolve_compute_dtype(vm["dtype"].as<std::string>(), options.device);
  info("compute: ", describe_compute(options.dtype, options.device));
  const auto format = vm["format"].as<std::string>();
  if (format != "safetensors" && format != "npy") fail("--format '", format, "': expected safetensors or npy");

  const std::filesystem::path out = vm["out"].as<std::string>();
  // Fail before any work when the output cannot be written.
  ensure_writable_dir(format == "npy" ? out : (out.has_parent_path() ? out.parent_path() : "."));

  const auto records = read_fasta(vm["fasta"].as<std::string>());
  if (records.empty()) fail(vm["fasta"].as<std::string>(), ": no sequences");
  load_plugins();
  // A folder, or a hub id found in the local Hugging Face cache.
  const std::filesystem::path model_dir = resolve_model_folder(vm["model"].as<std::string>(), vm["model"].as<std::string>());
  auto model = load_sequence_encoder(model_dir, encoder_option(vm));

  auto result = embed_sequences(*model, records, options);

  std::map<std::string, std::string> metadata{
      {"model", std::filesystem::absolute(model_dir).string()},
      {"family", model->family()},
      {"layers", vm["repr-layers"].as<std::string>()},
      {"include", vm["include"].as<std::string>()},
      {"truncation", std::to_string(result.limit)},
      {"long_policy", policy},
      {"dtype", compute_dtype_name(options.dtype)},
      {"pooling", "mean over residues (specials excluded)"},
      {"producer", "sapling embed"}};
  if (format == "safetensors") {
    save_safetensors(out, result.tensors, metadata);
  } else {
    for (const auto& [name, tensor] : result.tensors) {
      const auto slash = name.rfind('/');
      save_npy(out / (file_safe(name.substr(0, slash)) + "." + name.substr(slash + 1) + ".npy"), tensor);
    }
  }
  info("embedded ", records.size(), " sequences (", result.residues, " residues) in ", result.seconds, " s: ",
       static_cast<int64_t>(result.residues / std::max(result.seconds, 1e-9)), " residues/s on ",
       torch::get_num_threads(), " threads; ", result.truncated, " over the length limit; wrote ", out.string());
  if (vm["mfu"].as<bool>()) report_model_flops(*model, result, options);
  return 0;
}

Register reg("embed", "FASTA -> per-residue / mean / BOS embeddings and contacts", run);

}  // namespace
}  // namespace sapling::cli::embed_command
