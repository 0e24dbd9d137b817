// `sapling bench` reports: mean ± std tables with Δ vs baseline (Markdown), long CSV, and gnuplot bar charts, training curves and contact maps.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>  // for access

#include "gnuplot.hpp"
#include "sapling/internal/bench.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"

namespace fs = std::filesystem;

namespace sapling::bench {
namespace {

std::string fixed(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// Successful values of one metric for a model x task, and the number of failed seeds.
struct Column {
  std::vector<double> values;
  int64_t failed = 0;
};

Column collect(const std::vector<CellResult>& cells, const std::string& model, const std::string& task,
               const std::string& metric) {
  Column c;
  for (const auto& cell : cells) {
    if (cell.model != model || cell.task != task) continue;
    if (!cell.ok) {
      ++c.failed;
      continue;
    }
    for (const auto& [name, value] : cell.metrics)
      if (name == metric && std::isfinite(value)) c.values.push_back(value);
  }
  return c;
}

std::string task_plot_metric(const Task& task, const std::vector<CellResult>& cells) {
  if (!task.plot_metric.empty()) return task.plot_metric;
  const auto metrics = table_metrics(task, cells);
  return metrics.empty() ? std::string() : metrics.front();
}

void bar_charts(const Config& config, const ReportInputs& in, const fs::path& dir, const fs::path& gnuplot,
                std::vector<fs::path>& drawn) {
  for (const auto& task : config.tasks) {
    const std::string metric = task_plot_metric(task, in.cells);
    if (metric.empty()) continue;
    std::ostringstream dat;
    dat << "# model mean std n (" << task.label << ": " << metric << ")\n";
    int rows = 0;
    bool all_positive = true;
    for (const auto& model : config.models) {
      const auto col = collect(in.cells, model.name, task.label, metric);
      if (col.values.empty()) continue;
      const auto s = summarize(col.values);
      dat << "\"" << model.name << "\" " << s.mean << " " << s.std << " " << s.n << "\n";
      all_positive = all_positive && s.mean >= 0;
      ++rows;
    }
    if (rows == 0) continue;
    const std::string name = "bar_" + task.label;
    write_file_atomic(dir / (name + ".dat"), dat.str());
    std::ostringstream gp;
    gp << "set title " << gp_quote(task.label + ": " + metric + " (mean +/- std over seeds)") << "\n"
       << "set style data histogram\nset style histogram errorbars gap 2 lw 1\n"
       << "set style fill solid 0.6 border -1\nset boxwidth 0.8\nset grid ytics\nunset key\n"
       << "set ylabel " << gp_quote(metric) << "\nset xtics rotate by -20\n" << (all_positive ? "set yrange [0:*]\n" : "")
       << "plot " << gp_quote(name + ".dat") << " using 2:3:xtic(1) lc rgb '#4477aa'\n";
    if (auto png = draw_gnuplot(dir, name, gp.str(), gnuplot)) drawn.push_back(*png);
  }
}

// Per model: every logged term of each seed's run, smoothed over the raw line, validation as markers.
void training_curves(const ReportInputs& in, const fs::path& dir, const fs::path& gnuplot, std::vector<fs::path>& drawn) {
  for (const auto& [model, runs] : in.runs) {
    std::vector<TrainingCurve> curves;
    for (const auto& [seed, run_dir] : runs)
      if (fs::exists(run_dir / "metrics.jsonl")) curves.push_back({"seed " + std::to_string(seed), run_dir / "metrics.jsonl"});
    if (curves.empty()) continue;
    if (auto png = plot_training(curves, dir, "training_" + model, model, gnuplot)) drawn.push_back(*png);
  }
}

// The first contact task (config order) whose cell holds extra.example, per model, first seed that has it:
// top-L predicted pairs (|i-j| >= 6) above the diagonal, true contacts below.
void contact_maps(const Config& config, const ReportInputs& in, const fs::path& dir, const fs::path& gnuplot,
                  std::vector<fs::path>& drawn) {
  for (const auto& model : config.models) {
    for (const auto& task : config.tasks) {
      nlohmann::json example;
      int64_t seed_used = -1;
      for (const auto seed : config.seeds) {
        auto it = in.cell_files.find(model.name + "/" + task.label + "/" + std::to_string(seed));
        if (it == in.cell_files.end() || !fs::exists(it->second)) continue;
        try {
          const auto j = nlohmann::json::parse(read_file(it->second));
          if (j.contains("extra") && j["extra"].contains("example")) {
            example = j["extra"]["example"];
            seed_used = seed;
            break;
          }
        } catch (const std::exception&) {
          continue;
        }
      }
      if (seed_used < 0 || !example.contains("predicted") || !example.contains("true")) continue;
      const auto& pred = example["predicted"];
      const auto& truth = example["true"];
      const size_t L = pred.size();
      if (L == 0 || truth.size() != L) continue;
      const int64_t min_sep = 6;
      std::vector<std::pair<double, std::pair<size_t, size_t>>> ranked;
      for (size_t i = 0; i < L; ++i)
        for (size_t j = i + min_sep; j < L; ++j)
          if (pred[i][j].is_number()) ranked.push_back({pred[i][j].get<double>(), {i, j}});
      std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      std::vector<std::vector<double>> grid(L, std::vector<double>(L, 0.0));
      for (size_t i = 0; i < L; ++i)
        for (size_t j = 0; j + min_sep <= i; ++j)
          if (truth[i][j].is_number() && truth[i][j].get<double>() > 0.5) grid[i][j] = 1.0;
      size_t correct = 0;
      for (size_t k = 0; k < std::min(L, ranked.size()); ++k) {
        const auto [i, j] = ranked[k].second;
        const bool hit = truth[i][j].is_number() && truth[i][j].get<double>() > 0.5;
        correct += hit;
        grid[i][j] = hit ? 1.0 : 0.5;  // correct: black, wrong: red
      }
      const std::string name = "contacts_" + model.name + "_" + task.label;
      std::ostringstream dat;
      for (size_t i = 0; i < L; ++i) {
        for (size_t j = 0; j < L; ++j) dat << (j ? " " : "") << grid[i][j];
        dat << "\n";
      }
      write_file_atomic(dir / (name + ".dat"), dat.str());
      const std::string protein = example.value("name", std::string("protein"));
      std::ostringstream gp;
      // A double-quoted gnuplot string: "\n" breaks the title in two lines.
      std::string title = model.name + ", " + task.label + " seed " + std::to_string(seed_used) + ": " + protein +
                          " (L=" + std::to_string(L) + ")\n" + "upper: top-L predicted, |i-j| >= 6 (" +
                          std::to_string(correct) + " correct: black, wrong: red); lower: true contacts";
      std::string quoted = "\"";
      for (char c : title) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c == '\n' ? std::string("\\n") : std::string(1, c);
      }
      quoted += "\"";
      gp << "set title " << quoted << "\nset size square\nset xrange [-0.5:" << L - 0.5 << "]\nset yrange [" << L - 0.5 << ":-0.5]\n"
         << "set palette defined (0 'white', 0.5 '#cc3311', 1 'black')\nset cbrange [0:1]\nunset colorbox\n"
         << "set xlabel 'residue j'\nset ylabel 'residue i'\n"
         << "plot " << gp_quote(name + ".dat") << " matrix with image notitle\n";
      if (auto png = draw_gnuplot(dir, name, gp.str(), gnuplot)) drawn.push_back(*png);
      break;  // one map per model
    }
  }
}

}  // namespace

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int64_t>(values.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(s.n);
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(s.n - 1));
  }
  return s;
}

std::string format_summary(const Summary& s) {
  if (s.n == 0) return "–";
  if (s.n == 1) return fixed(s.mean) + " (n=1)";
  return fixed(s.mean) + " ± " + fixed(s.std) + " (n=" + std::to_string(s.n) + ")";
}

std::string format_delta(double value, double baseline) {
  if (!std::isfinite(value) || !std::isfinite(baseline) || baseline == 0) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%+.1f%%", 100.0 * (value - baseline) / std::fabs(baseline));
  return buf;
}

std::vector<std::string> table_metrics(const Task& task, const std::vector<CellResult>& cells) {
  if (!task.metrics.empty()) return task.metrics;
  std::vector<std::string> out;
  for (const auto& cell : cells)
    if (cell.task == task.label && cell.ok)
      for (const auto& [name, value] : cell.metrics)
        if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  return out;
}

std::string markdown_table(const Config& config, const std::vector<CellResult>& cells) {
  struct Col {
    std::string task, metric;
  };
  std::vector<Col> cols;
  for (const auto& task : config.tasks) {
    const auto metrics = table_metrics(task, cells);
    if (metrics.empty()) cols.push_back({task.label, ""});  // every cell failed: one column saying so
    for (const auto& m : metrics) cols.push_back({task.label, m});
  }
  std::ostringstream os;
  os << "| model |";
  for (const auto& c : cols) os << " " << c.task << (c.metric.empty() ? "" : " " + c.metric) << " | Δ vs " << config.baseline << " |";
  os << "\n|---|";
  for (size_t i = 0; i < cols.size(); ++i) os << "---:|---:|";
  os << "\n";
  for (const auto& model : config.models) {
    os << "| " << model.name << (model.name == config.baseline ? " (baseline)" : "") << " |";
    for (const auto& c : cols) {
      const auto col = collect(cells, model.name, c.task, c.metric);
      if (col.values.empty()) {
        os << " " << (col.failed ? "failed (" + std::to_string(col.failed) + (col.failed > 1 ? " seeds)" : " seed)") : "–")
           << " | – |";
        continue;
      }
      const auto s = summarize(col.values);
      std::string text = format_summary(s);
      if (col.failed) text.insert(text.size() - 1, ", " + std::to_string(col.failed) + " failed");
      std::string delta = "–";
      if (model.name != config.baseline) {
        const auto base = collect(cells, config.baseline, c.task, c.metric);
        if (!base.values.empty()) delta = format_delta(s.mean, summarize(base.values).mean);
        if (const auto d = delta_interval(cells, model.name, config.baseline, c.task, c.metric))
          delta += " · " + format_interval(*d);
      }
      os << " " << text << " | " << delta << " |";
    }
    os << "\n";
  }
  return os.str();
}

std::optional<stats::DeltaInterval> delta_interval(const std::vector<CellResult>& cells, const std::string& model,
                                                   const std::string& baseline, const std::string& task,
                                                   const std::string& metric) {
  std::vector<stats::ItemScores> mine, base;
  for (const auto& a : cells) {
    if (a.model != model || a.task != task || !a.ok || !a.items.count(metric)) continue;
    for (const auto& b : cells)
      if (b.model == baseline && b.task == task && b.seed == a.seed && b.ok && b.items.count(metric)) {
        mine.push_back(a.items.at(metric));
        base.push_back(b.items.at(metric));
        break;
      }
  }
  if (mine.empty()) return std::nullopt;
  try {
    return stats::paired_bootstrap(mine, base, 1000, 0);
  } catch (const std::exception& e) {
    warn("no interval for ", model, " vs ", baseline, " on ", task, " ", metric, ": ", e.what());
    return std::nullopt;
  }
}

std::string format_interval(const stats::DeltaInterval& d) {
  auto sign = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%+.3f", v);
    return std::string(buf);
  };
  if (!std::isfinite(d.low) || !std::isfinite(d.high)) return sign(d.delta) + " [n/a]";
  return sign(d.delta) + " [" + sign(d.low) + ", " + sign(d.high) + "]" + (d.excludes_zero() ? " *" : "");
}

std::string csv_table(const std::vector<CellResult>& cells) {
  auto field = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  std::ostringstream os;
  os << "model,task,metric,seed,value\n";
  for (const auto& cell : cells) {
    if (!cell.ok) continue;
    for (const auto& [name, value] : cell.metrics) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", value);
      os << field(cell.model) << "," << field(cell.task) << "," << field(name) << "," << cell.seed << "," << buf << "\n";
    }
  }
  return os.str();
}

fs::path find_gnuplot() {
  const char* path = std::getenv("PATH");
  if (!path) return {};
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / "gnuplot";
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

void write_reports(const Config& config, const ReportInputs& inputs) {
  fs::create_directories(config.output);
  std::ostringstream md;
  md << "# Benchmark " << config.file.filename().string() << "\n\n"
     << "Cells: mean ± sample standard deviation over seeds (n = successful seeds"
     << "); Δ = (mean − baseline mean) / |baseline mean| against `" << config.baseline << "`; where a task keeps "
     << "per-item scores, Δ is followed by the absolute difference and its 95% interval from a paired bootstrap over "
     << "test items (proteins or variants) and seeds (1000 replicates), * when the interval excludes 0. Seeds:";
  for (const auto s : config.seeds) md << " " << s;
  md << ". Bench file: `" << config.file.string() << "`.\n\n" << markdown_table(config, inputs.cells);
  std::vector<std::string> failures;
  for (const auto& cell : inputs.cells)
    if (!cell.ok) failures.push_back(cell.model + " × " + cell.task + " seed " + std::to_string(cell.seed) + ": " + cell.error);
  if (!failures.empty()) {
    md << "\nFailed cells:\n\n";
    for (const auto& f : failures) md << "- " << f << "\n";
  }
  write_file_atomic(config.output / "results.md", md.str());
  write_file_atomic(config.output / "results.csv", csv_table(inputs.cells));

  const fs::path plots = config.output / "plots";
  fs::create_directories(plots);
  const fs::path gnuplot = find_gnuplot();
  if (gnuplot.empty())
    warn("gnuplot not found on PATH: wrote the plot data and scripts to ", plots.string(),
         " without PNGs (install gnuplot-nox, then run `gnuplot -c FILE.gp` there or re-run the bench)");
  std::vector<fs::path> drawn;
  bar_charts(config, inputs, plots, gnuplot, drawn);
  training_curves(inputs, plots, gnuplot, drawn);
  contact_maps(config, inputs, plots, gnuplot, drawn);
  for (const auto& png : drawn) info("plot ", png.string());
}

}  // namespace sapling::bench
