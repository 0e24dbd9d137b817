// `sapling eval TASK --model DIR`: runs a registered evaluation task on a pLM, prints its metrics and writes them as JSON.
#include <chrono>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "component_options.hpp"
#include "sapling/autocast_encoder.hpp"
#include "sapling/compute_dtype.hpp"
#include "sapling/error.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/files.hpp"
#include "sapling/internal/hub_cache.hpp"
#include "sapling/log.hpp"
#include "sapling/model_loading.hpp"

namespace sapling::cli::eval_command {  // one namespace per command: the CLI is a unity build
namespace {

std::string task_list() {
  std::string out = "tasks:\n";
  for (const auto& [name, entry] : EvaluationTaskRegistry::instance().entries())
    out += "  " + name + " (plugin " + entry.plugin + ")\n";
  return out;
}

// Word-wraps a description for --help.
std::string wrap(const std::string& text, size_t width, const std::string& indent) {
  std::string out, line;
  std::istringstream words(text);
  std::string word;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("task", po::value<std::string>(), "evaluation task (see `sapling eval --help`)")(
      "model", po::value<std::string>(), "model folder (HF layout: config.json + safetensors), or a hub id in the local Hugging Face cache")(
      "option", po::value<std::vector<std::string>>(), "task option key=value (repeatable)")(
      "out,o", po::value<std::string>(), "write the metrics (and the task's extra data) as JSON here")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu or cuda[:N]")(
      "dtype", po::value<std::string>()->default_value("auto"),
      "the encoder's forward passes: auto (bf16 autocast where the device has bf16 matrix units, float32 elsewhere), "
      "fp32, bf16 or fp16 (CUDA). Probe fits and metrics always run in float32")(
      "plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  add_encoder_option(desc);
  po::positional_options_description pos;
  pos.add("task", 1);

  // The usage text names the task's data, split and options, so plugins load before parsing.
  std::vector<std::string> extra_paths;
  std::string task_name;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--plugin-path" && i + 1 < args.size()) extra_paths.push_back(args[i + 1]);
    else if (args[i].rfind("--plugin-path=", 0) == 0) extra_paths.push_back(args[i].substr(14));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].empty() || args[i][0] == '-') {
      // Skip the value of options that take one.
      if (args[i] == "--model" || args[i] == "--option" || args[i] == "--out" || args[i] == "-o" ||
          args[i] == "--device" || args[i] == "--dtype" || args[i] == "--encoder" || args[i] == "--plugin" ||
          args[i] == "--plugin-path" || args[i] == "--threads")
        ++i;
      continue;
    }
    task_name = args[i];
    break;
  }
  load_plugins(extra_paths);
  const auto& registry = EvaluationTaskRegistry::instance();
  std::string usage =
      "usage: sapling eval TASK --model DIR [--option key=value]... [--out metrics.json] [--device cpu|cuda]\n"
      "                         [--dtype auto|fp32|bf16|fp16]\n\n";
  if (!task_name.empty() && registry.contains(task_name)) {
    const auto& entry = registry.find(task_name);
    usage += task_name + ":\n" + wrap(entry.description, 96, "  ") + "\ntask options (--option key=value):\n" +
             entry.schema.describe("  ");
  } else {
    usage += task_list() + "\n`sapling eval TASK --help` shows a task's data, split and options.";
  }
  po::variables_map vm;
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);
  if (!vm.count("task")) fail("sapling eval: name a task\n", task_list());
  if (!vm.count("model")) fail("sapling eval ", task_name, ": --model DIR is required");
  const auto& entry = registry.find(vm["task"].as<std::string>());
  const auto pairs = vm.count("option") ? vm["option"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const Options options = options_from_pairs(entry.schema, pairs, "--option", entry.name);

  std::filesystem::path out;
  if (vm.count("out")) {
    out = vm["out"].as<std::string>();
    ensure_writable_dir(out.has_parent_path() ? out.parent_path() : ".");
  }
  const auto device_name = vm["device"].as<std::string>();
  const torch::Device device = parse_device(device_name);
  if (device.is_cuda() && !torch::cuda::is_available()) fail("--device ", device_name, ": CUDA is not available");
  const auto dtype = resolve_compute_dtype(vm["dtype"].as<std::string>(), device);
  info("compute: ", describe_compute(dtype, device));

  // A folder, or a hub id found in the local Hugging Face cache.
  const std::filesystem::path model_dir = resolve_model_folder(vm["model"].as<std::string>(), vm["model"].as<std::string>());
  auto loaded = load_sequence_encoder(model_dir, encoder_option(vm));
  loaded->to(device, torch::kFloat32);
  // Only the encoder's forward passes run under autocast; the task's probes and metrics see float32 tensors.
  auto model = with_compute_dtype(loaded, device, dtype);
  auto task = entry.factory(options);
  const auto start = std::chrono::steady_clock::now();
  const EvalResult result = task->run(*model);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::cout << entry.name << " on " << model_dir.string() << " (" << seconds << " s)\n" << result.format();
  if (!out.empty()) {
    auto json = result.to_json(entry.name);
    json["model"] = std::filesystem::absolute(model_dir).string();
    json["seconds"] = seconds;
    json["dtype"] = compute_dtype_name(dtype);
    nlohmann::ordered_json opts = nlohmann::ordered_json::object();
    for (const auto& key : options.keys()) opts[key] = options.to_string(key);
    json["options"] = opts;
    write_file_atomic(out, json.dump(1) + "\n");
    info("wrote ", out.string());
  }
  return 0;
}

Register reg("eval", "run an evaluation task (contacts, secondary structure, perplexity, ...) on a pLM", run);

}  // namespace
}  // namespace sapling::cli::eval_command
