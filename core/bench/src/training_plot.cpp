// Training curves from metrics.jsonl: a panel per term, runs overlaid, raw faint under a moving average, validation as markers.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "gnuplot.hpp"
#include "sapling/internal/bench.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace fs = std::filesystem;

namespace sapling::bench {
namespace {

// Numbers that describe the batch or the clock rather than the training: not drawn.
const std::set<std::string> kBookkeeping = {"step",    "epoch",   "residues",         "proteins",
                                            "batches", "padding", "residues_per_s",   "head_lr",
                                            "seconds", "tokens",  "reference_passes", "selection"};
// Colour-blind-safe (Paul Tol's bright scheme), one per run.
const std::vector<std::string> kColours = {"4477AA", "EE6677", "228833", "CCBB44", "66CCEE", "AA3377", "BBBBBB"};

using Line = std::map<std::string, double>;  // key -> value, one metrics.jsonl line
struct Run {
  std::string label;
  std::vector<std::pair<int64_t, Line>> train, valid;
};

Run read_run(const TrainingCurve& curve) {
  std::ifstream in(curve.metrics);
  if (!in) fail(curve.metrics.string(), ": cannot read (expected a run's metrics.jsonl)");
  Run run{curve.label, {}, {}};
  std::string text;
  while (std::getline(in, text)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const std::exception&) {
      continue;  // a line cut by a kill; the trainer truncates it on resume
    }
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number()) continue;
    Line line;
    for (const auto& [key, value] : j.items())
      if (value.is_number() && !kBookkeeping.count(key)) line[key] = value.get<double>();
    const auto type = j.value("type", std::string("train"));
    auto& into = type == "valid" ? run.valid : run.train;
    if (type == "train" || type == "valid") into.emplace_back(j["step"].get<int64_t>(), std::move(line));
  }
  if (run.train.empty()) fail(curve.metrics.string(), ": no training lines (\"type\":\"train\") to plot");
  return run;
}

// A panel: its title and the keys drawn in it.
struct Panel {
  std::string title;
  std::vector<std::string> keys;
};

// Total loss first, then each term in name order, the kept fractions together, then lr and grad norm.
std::vector<Panel> panels_of(const std::vector<Run>& runs) {
  std::set<std::string> keys;
  for (const auto& run : runs)
    for (const auto& [step, line] : run.train)
      for (const auto& [key, value] : line) keys.insert(key);
  std::vector<Panel> out;
  Panel kept{"kept fraction (selection)", {}};
  if (keys.count("loss")) out.push_back({"total loss", {"loss"}});
  for (const auto& key : keys) {
    if (key == "loss" || key == "lr" || key == "grad_norm") continue;
    if (key.rfind("kept.", 0) == 0) kept.keys.push_back(key);
    else out.push_back({key, {key}});
  }
  if (!kept.keys.empty()) out.push_back(kept);
  for (const char* key : {"lr", "grad_norm"})
    if (keys.count(key)) out.push_back({key, {key}});
  return out;
}

std::string number(double v) {
  if (!std::isfinite(v)) return "NaN";
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}

// Columns: step, then per key its raw value and its debiased exponential moving average (TensorBoard's
// smoothing: the average of the values seen so far, weighted towards the recent ones, without the pull towards
// zero of a plain EMA's first steps). A key missing from a line is NaN (gnuplot leaves a gap).
std::string train_table(const Run& run, const std::vector<std::string>& keys, double smoothing) {
  std::ostringstream os;
  os << "# step";
  for (const auto& key : keys) os << " " << key << " " << key << "_smoothed";
  os << "\n";
  std::map<std::string, std::pair<double, int64_t>> average;  // key -> (EMA, values seen)
  for (const auto& [step, line] : run.train) {
    os << step;
    for (const auto& key : keys) {
      const auto it = line.find(key);
      if (it == line.end() || !std::isfinite(it->second)) {
        os << " NaN NaN";
        continue;
      }
      auto& [ema, seen] = average[key];
      ema = smoothing * ema + (1 - smoothing) * it->second;
      ++seen;
      const double debiased = smoothing > 0 ? ema / (1 - std::pow(smoothing, static_cast<double>(seen))) : ema;
      os << " " << number(it->second) << " " << number(debiased);
    }
    os << "\n";
  }
  return os.str();
}

std::string valid_table(const Run& run, const std::vector<std::string>& keys) {
  std::ostringstream os;
  os << "# step";
  for (const auto& key : keys) os << " " << key;
  os << "\n";
  for (const auto& [step, line] : run.valid) {
    os << step;
    for (const auto& key : keys) {
      const auto it = line.find(key);
      os << " " << (it == line.end() ? "NaN" : number(it->second));
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace

std::optional<fs::path> plot_training(const std::vector<TrainingCurve>& curves, const fs::path& dir,
                                      const std::string& name, const std::string& title, const fs::path& gnuplot,
                                      double smoothing) {
  if (curves.empty()) fail("plot: no runs to plot");
  if (!(smoothing >= 0 && smoothing < 1)) fail("plot: smoothing must be in [0, 1), got ", smoothing);
  std::vector<Run> runs;
  for (const auto& curve : curves) runs.push_back(read_run(curve));
  const auto panels = panels_of(runs);
  std::vector<std::string> keys;
  for (const auto& panel : panels) keys.insert(keys.end(), panel.keys.begin(), panel.keys.end());
  fs::create_directories(dir);

  std::vector<std::string> train_files, valid_files;
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto base = name + "_run" + std::to_string(r + 1);
    train_files.push_back(base + "_train.dat");
    write_file_atomic(dir / train_files.back(), "# " + runs[r].label + "\n" + train_table(runs[r], keys, smoothing));
    valid_files.push_back(runs[r].valid.empty() ? "" : base + "_valid.dat");
    if (!runs[r].valid.empty())
      write_file_atomic(dir / valid_files.back(), "# " + runs[r].label + "\n" + valid_table(runs[r], keys));
  }
  const auto column = [&](const std::string& key) {
    return static_cast<int>(std::find(keys.begin(), keys.end(), key) - keys.begin());
  };

  const int columns = panels.size() <= 4 ? 2 : 3;
  const int rows = static_cast<int>((panels.size() + columns - 1) / columns);
  std::ostringstream gp;
  gp << "set datafile missing 'NaN'\nset grid lc rgb '#dddddd'\nset key top right font ',8' samplen 2\n"
     << "set multiplot layout " << rows << "," << columns << " title "
     << gp_quote(title + (smoothing > 0 ? " (faint: raw; solid: smoothed " + number(smoothing) + "; points: validation)"
                                        : " (points: validation)"))
     << "\n";
  for (const auto& panel : panels) {
    gp << "set title " << gp_quote(panel.title) << "\nset xlabel 'step'\n"
       << (panel.title == "lr" ? "set format y '%.0e'\n" : "set format y '%g'\n");
    std::vector<std::string> plots;
    for (size_t r = 0; r < runs.size(); ++r) {
      const auto& colour = kColours[r % kColours.size()];
      for (size_t k = 0; k < panel.keys.size(); ++k) {
        const auto& key = panel.keys[k];
        const int raw = 2 + 2 * column(key), smooth = raw + 1;
        // The legend names runs (and, in the kept panel, terms); with one run and one key it is left out.
        std::string label = runs.size() > 1 ? runs[r].label : "";
        if (panel.keys.size() > 1) label += (label.empty() ? "" : ", ") + key;
        const std::string dash = panel.keys.size() > 1 ? " dt " + std::to_string(k + 1) : "";
        if (smoothing > 0 && key != "lr") {  // a schedule is exact: averaging would only shift it
          plots.push_back(gp_quote(train_files[r]) + " using 1:" + std::to_string(raw) + " with lines lw 1 lc rgb '#B0" +
                          colour + "'" + dash + " notitle");
          plots.push_back(gp_quote(train_files[r]) + " using 1:" + std::to_string(smooth) + " with lines lw 2 lc rgb '#" +
                          colour + "'" + dash + (label.empty() ? " notitle" : " title " + gp_quote(label)));
        } else {
          plots.push_back(gp_quote(train_files[r]) + " using 1:" + std::to_string(raw) + " with lines lw 1.5 lc rgb '#" +
                          colour + "'" + dash + (label.empty() ? " notitle" : " title " + gp_quote(label)));
        }
        if (!valid_files[r].empty())
          plots.push_back(gp_quote(valid_files[r]) + " using 1:" + std::to_string(2 + column(key)) +
                          " with points pt 7 ps 0.9 lc rgb '#" + colour + "'" +
                          (panel.keys.size() == 1 && r == 0 ? " title 'valid'" : " notitle"));
      }
    }
    gp << "plot ";
    for (size_t i = 0; i < plots.size(); ++i) gp << (i ? ", \\\n     " : "") << plots[i];
    gp << "\n";
  }
  gp << "unset multiplot\n";
  const std::string terminal =
      "pngcairo size " + std::to_string(460 * columns) + "," + std::to_string(300 * rows + 40) + " font ',9'";
  return draw_gnuplot(dir, name, gp.str(), gnuplot, terminal);
}

}  // namespace sapling::bench
