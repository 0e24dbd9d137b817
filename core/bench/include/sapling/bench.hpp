// `sapling bench` (libsapling_bench, beside the core): the BENCH.toml schema, the cached model x task x seed cells, and the reports (Markdown, CSV, gnuplot).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sapling/options.hpp"
#include "sapling/internal/stats.hpp"

namespace sapling::bench {

// One row of the table: an existing HF model folder, or a recipe trained
// first (one run per seed) with `sapling train RECIPE --set train.seed=<k>`.
struct Model {
  std::string name;
  std::filesystem::path path;    // HF folder (path models)
  std::filesystem::path recipe;  // training recipe (recipe models)
  std::vector<std::string> set;  // extra --set overrides of the recipe
  std::string origin;            // "bench.toml:12"
  bool trained() const { return !recipe.empty(); }
};

// One evaluation: a registered task with options, shown under `label`.
struct Task {
  std::string label;  // column label (default: the task name); unique
  std::string task;   // registered evaluation task
  // Options as passed to `sapling eval --option key=value`: value in TOML
  // syntax, paths made absolute (relative ones are relative to the bench file).
  std::vector<std::pair<std::string, std::string>> options;
  // Every option with defaults filled in (for the cache key).
  std::string canonical_options;
  bool has_seed = false;       // the task has a `seed` option and the bench sets it per seed
  std::vector<std::string> metrics;  // metrics in the table (empty = all)
  std::string plot_metric;           // metric of the bar chart (empty = first metric)
  std::string origin;
};

struct Config {
  std::filesystem::path file;
  std::vector<Model> models;
  std::vector<Task> tasks;
  std::vector<int64_t> seeds;
  std::string baseline;
  std::filesystem::path output;
};

// What the loader needs to know about a task: its option schema, or nullptr
// when no loaded plugin registers it; and the registered names for hints.
struct TaskCatalog {
  std::function<const OptionSchema*(const std::string& task)> schema;
  std::vector<std::string> names;
};

// Reads and validates BENCH.toml strictly: unknown keys, wrong types,
// duplicate names, an unknown task or task option, a baseline that is no
// model all fail with "file:line: ...".
Config load_config(const std::filesystem::path& file, const TaskCatalog& catalog);

// ------------------------------------------------------------------ results

// One finished (or failed) cell.
struct CellResult {
  std::string model, task;  // model name, task label
  int64_t seed = 0;
  bool ok = false;
  std::string error;                                   // when !ok
  std::vector<std::pair<std::string, double>> metrics;  // in the task's order
  // Per-item scores of the metrics that have them (the task's extra.items): the bootstrap's input.
  std::map<std::string, stats::ItemScores> items;
};

struct Summary {
  double mean = 0, std = 0;  // sample standard deviation (n - 1); 0 when n == 1
  int64_t n = 0;
};
Summary summarize(const std::vector<double>& values);

// "0.200 ± 0.100 (n=3)"; "0.200 (n=1)".
std::string format_summary(const Summary& s);
// Relative change of `value` vs `baseline` in percent, "+100.0%"; "n/a" when
// the baseline is 0 or not finite.
std::string format_delta(double value, double baseline);

// The Markdown table: one row per model (config order), per task metric a
// column "mean ± std (n)" and a column "Δ vs <baseline>"; failed seeds are
// counted in the cell, a model x task without any success reads "failed".
// Where both have per-item scores for the metric, the Δ column adds the
// absolute difference and its 95% paired-bootstrap interval (delta_interval),
// with " *" when the interval excludes zero.
std::string markdown_table(const Config& config, const std::vector<CellResult>& cells);
// Paired bootstrap of metric(model) - metric(baseline) over the seeds where
// both cells have per-item scores; nullopt when there are none or they do not
// pair (different items). 1000 replicates, seeded: the table is reproducible.
std::optional<stats::DeltaInterval> delta_interval(const std::vector<CellResult>& cells, const std::string& model,
                                                               const std::string& baseline, const std::string& task,
                                                               const std::string& metric);
// "+0.012 [+0.003, +0.021] *" (the star when the interval excludes zero).
std::string format_interval(const stats::DeltaInterval& d);
// Long format: model,task,metric,seed,value (one line per metric of every successful cell).
std::string csv_table(const std::vector<CellResult>& cells);

// Metrics shown for a task: its `metrics` list, else every metric its cells report (first-seen order).
std::vector<std::string> table_metrics(const Task& task, const std::vector<CellResult>& cells);

// ------------------------------------------------------------------ running

// Cache key of a cell: a hash of the model identity, task, options and seed (16 hex digits).
std::string cell_key(const std::string& model_identity, const Task& task, int64_t seed);
// Identity of a model folder: absolute path + contents of its *.json + size and mtime of its weight files.
std::string folder_identity(const std::filesystem::path& dir);
// FNV-1a 64 of `text` with a final bit mix, as 16 hex digits (stable across platforms and runs).
std::string hash_hex(const std::string& text);

struct RunOptions {
  std::string exe;        // the sapling executable (for subprocesses)
  bool force = false;     // re-run finished cells and training, moving old results aside
  int threads = 0;        // forwarded as --threads when > 0
  std::string device = "cpu";
  std::string dtype = "fp32";  // resolved compute dtype, always forwarded as --dtype; other than fp32 it keys the cells
  std::vector<std::string> plugin_paths;  // forwarded as --plugin-path
};

// Runs (or reuses) every cell, writes results.md, results.csv and the plots
// under config.output, prints progress. Returns the number of failed cells.
int64_t run_bench(const Config& config, const RunOptions& options);

// Writes results.md, results.csv and the plots from cells (no evaluation).
// `runs` maps "model" to its training run folders (for training curves);
// `cell_files` maps "model/task/seed" to the cell JSON (for contact maps).
struct ReportInputs {
  std::vector<CellResult> cells;
  std::map<std::string, std::vector<std::pair<int64_t, std::filesystem::path>>> runs;
  std::map<std::string, std::filesystem::path> cell_files;
};
void write_reports(const Config& config, const ReportInputs& inputs);

// Runs a program (argv[0] is the path) with stdout and stderr appended to
// `log` (truncated first), in `working_dir` when given; returns its exit
// status (128 + signal when killed, 127 when it could not be started).
int run_process(const std::vector<std::string>& argv, const std::filesystem::path& log,
                            const std::filesystem::path& working_dir = {});
// The gnuplot executable on PATH, or empty.
std::filesystem::path find_gnuplot();

// One run's metrics.jsonl and its name in the legend.
struct TrainingCurve {
  std::string label;
  std::filesystem::path metrics;
};
// Training curves of several runs, overlaid: one panel per logged term (total loss, each loss term, the
// contrastive temperature, kept fractions together, lr, grad norm), the raw per-step values faint under an
// exponential moving average (`smoothing`, TensorBoard's debiased one; 0 = raw), validation as markers. Writes
// `name`.png (with its .gp and .dat files) into `dir`; returns the PNG when gnuplot drew it. Lines cut by a kill
// are skipped; a file without a single training line is an error naming it.
std::optional<std::filesystem::path> plot_training(const std::vector<TrainingCurve>& runs,
                                                   const std::filesystem::path& dir, const std::string& name,
                                                   const std::string& title, const std::filesystem::path& gnuplot,
                                                   double smoothing = 0.6);

}  // namespace sapling::bench
