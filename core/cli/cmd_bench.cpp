// `sapling bench BENCH.toml`: models x tasks x seeds through `sapling train` / `sapling eval` subprocesses, cached, reported as tables and plots.
#include <unistd.h>  // for readlink

#include <iostream>

#include "command.hpp"
#include "sapling/internal/bench.hpp"
#include "sapling/compute_dtype.hpp"
#include "sapling/error.hpp"
#include "sapling/evaluation.hpp"

namespace sapling::cli::bench_command {  // one namespace per command: the CLI is a unity build
namespace {

// This executable, so cells run the same build (argv[0] may be a bare name found on PATH).
std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) fail("sapling bench: cannot locate the sapling executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

const char* kUsage =
    "usage: sapling bench BENCH.toml [--force] [--threads N] [--device cpu|cuda]\n\n"
    "Runs every model x task x seed cell as `sapling eval` (recipe models are first trained with\n"
    "`sapling train RECIPE --set train.seed=<seed>`), each in its own process so one failing cell does\n"
    "not stop the others. Finished cells are cached under <output>/cells and reused (\"cached\");\n"
    "--force runs them again, moving old results aside. Writes <output>/results.md (mean ± std over\n"
    "seeds, Δ vs the baseline), results.csv (model,task,metric,seed,value) and plots/ (gnuplot PNGs).\n"
    "Exit status 1 when any cell failed. See docs/bench.md for the BENCH.toml schema.";

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("bench", po::value<std::string>(), "the bench file (TOML)")(
      "force", po::bool_switch(), "re-run finished cells and training runs (old results are moved aside, not deleted)")(
      "device", po::value<std::string>()->default_value("cpu"), "device for the evaluations: cpu or cuda[:N]")(
      "dtype", po::value<std::string>()->default_value("fp32"),
      "compute dtype of the training runs ([train] precision) and the evaluations: fp32 (the default here, so that a "
      "bench's numbers do not depend on the machine's matrix units), auto, bf16 or fp16 (evaluations; runs train in "
      "bf16); resolved once, and runs and cells of other dtypes than fp32 are cached apart")(
      "plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable; passed to every cell)");
  po::positional_options_description pos;
  pos.add("bench", 1);
  po::variables_map vm;
  if (!parse_args(args, desc, pos, vm, kUsage)) return 0;
  apply_common_options(vm);
  if (!vm.count("bench")) fail("sapling bench: name a bench file (see --help)");

  bench::RunOptions options;
  options.exe = self_exe();
  options.force = vm["force"].as<bool>();
  options.device = vm["device"].as<std::string>();
  options.dtype = compute_dtype_name(resolve_compute_dtype(vm["dtype"].as<std::string>(), parse_device(options.device)));
  if (vm.count("threads")) options.threads = vm["threads"].as<int>();
  if (vm.count("plugin-path")) options.plugin_paths = vm["plugin-path"].as<std::vector<std::string>>();

  // Task names and options are checked here, before any cell runs, against the plugins the cells will load.
  load_plugins(options.plugin_paths);
  const auto& registry = EvaluationTaskRegistry::instance();
  bench::TaskCatalog catalog;
  for (const auto& [name, entry] : registry.entries()) catalog.names.push_back(name);
  catalog.schema = [&registry](const std::string& task) -> const OptionSchema* {
    return registry.contains(task) ? &registry.find(task).schema : nullptr;
  };
  const auto config = bench::load_config(vm["bench"].as<std::string>(), catalog);
  const int64_t failed = bench::run_bench(config, options);
  if (failed > 0) {
    std::cerr << "error: " << failed << " cell" << (failed > 1 ? "s" : "") << " failed (see "
              << (config.output / "results.md").string() << ")" << std::endl;
    return 1;
  }
  return 0;
}

Register reg("bench", "benchmark models x tasks x seeds (trains recipes first); tables, CSV and plots", run);

}  // namespace
}  // namespace sapling::cli::bench_command
