// `sapling plot RUN...`: training curves of one or more runs, overlaid, as a PNG (every loss term, validation, lr).
#include <iostream>

#include "command.hpp"
#include "sapling/internal/bench.hpp"
#include "sapling/error.hpp"
#include "sapling/log.hpp"

namespace sapling::cli::plot_command {  // one namespace per command: the CLI is a unity build
namespace {

namespace fs = std::filesystem;

const char* kUsage =
    "usage: sapling plot RUN [RUN...] [--out DIR] [--name NAME] [--smooth 0.6]\n\n"
    "Draws the training curves of sapling runs (a run folder, or its metrics.jsonl) into DIR/NAME.png: one panel\n"
    "per logged term (total loss, MLM, structure tokens, contrastive, temperature, kept fractions, lr, grad norm),\n"
    "the runs overlaid in colours, raw values faint under a moving average, validation as points. The .dat and\n"
    "gnuplot .gp files stay beside the PNG for editing. TensorBoard reads the same numbers from RUN/tensorboard.";

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("runs", po::value<std::vector<std::string>>(), "run folders or metrics.jsonl files")(
      "out", po::value<std::string>()->default_value("."), "folder for the PNG and its data")(
      "name", po::value<std::string>()->default_value("training"), "file name of the PNG (without .png)")(
      "title", po::value<std::string>()->default_value(""), "title above the panels (default: the run names)")(
      "smooth", po::value<double>()->default_value(0.6),
      "moving-average weight in [0, 1), TensorBoard's smoothing; 0 draws the raw values only");
  po::positional_options_description pos;
  pos.add("runs", -1);
  po::variables_map vm;
  if (!parse_args(args, desc, pos, vm, kUsage)) return 0;
  apply_common_options(vm);
  if (!vm.count("runs")) fail("sapling plot: name at least one run folder or metrics.jsonl (see --help)");

  std::vector<bench::TrainingCurve> curves;
  std::string names;
  for (const auto& arg : vm["runs"].as<std::vector<std::string>>()) {
    fs::path metrics = arg;
    if (fs::is_directory(metrics)) metrics /= "metrics.jsonl";
    if (!fs::exists(metrics)) fail(arg, ": no metrics.jsonl (expected a `sapling train` run folder or its metrics.jsonl)");
    const fs::path run_dir = metrics.parent_path().empty() ? fs::path(".") : metrics.parent_path();
    const std::string label = fs::absolute(run_dir).lexically_normal().filename().string();
    curves.push_back({label, metrics});
    names += (names.empty() ? "" : ", ") + label;
  }
  const fs::path gnuplot = bench::find_gnuplot();
  if (gnuplot.empty()) warn("gnuplot not found on PATH: writing the data and the script only (install gnuplot-nox)");
  const std::string title = vm["title"].as<std::string>().empty() ? names : vm["title"].as<std::string>();
  const fs::path out = vm["out"].as<std::string>();
  const auto png = bench::plot_training(curves, out, vm["name"].as<std::string>(), title, gnuplot,
                                        vm["smooth"].as<double>());
  if (png) std::cout << "wrote " << png->string() << std::endl;
  else std::cout << "wrote " << (out / (vm["name"].as<std::string>() + ".gp")).string() << " (no PNG)" << std::endl;
  return png || gnuplot.empty() ? 0 : 1;
}

Register reg("plot", "training curves of runs (each loss term, validation, lr), overlaid, as a PNG", run);

}  // namespace
}  // namespace sapling::cli::plot_command
