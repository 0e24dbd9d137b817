// `sapling bench` execution: trains recipe models and runs each model x task x seed cell as a `sapling` subprocess, with a cell cache.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sapling/internal/bench.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"
#include "sapling/recipe.hpp"

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace sapling::bench {

int run_process(const std::vector<std::string>& argv, const fs::path& log, const fs::path& working_dir) {
  if (argv.empty()) fail("run_process: empty command");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string log_path = log.string(), dir = working_dir.string();
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start ", argv[0], ": fork failed");
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    if (!dir.empty() && ::chdir(dir.c_str()) != 0) ::_exit(127);
    ::execv(args[0], args.data());
    const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof(msg) - 1);
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail("waitpid failed for ", argv[0]);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

namespace {

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// Moves `path` aside as `<path>.<timestamp>[.<n>]<suffix>` so no finished result is lost.
fs::path move_aside(const fs::path& path, const std::string& suffix = "") {
  fs::path target;
  for (int n = 0;; ++n) {
    target = path.string() + "." + timestamp() + (n ? "." + std::to_string(n) : "") + suffix;
    if (!fs::exists(target)) break;
  }
  fs::rename(path, target);
  return target;
}

// The last "error: ..." line of a log (what the failed subprocess said), else its last line.
std::string log_error(const fs::path& log) {
  std::string text;
  try {
    text = read_file(log);
  } catch (const std::exception&) {
    return "";
  }
  std::istringstream lines(text);
  std::string line, last, last_error;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.rfind("error:", 0) == 0) last_error = line;
  }
  return last_error.empty() ? last : last_error;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", s);
  return buf;
}

CellResult read_cell(const fs::path& file, const std::string& model, const std::string& task, int64_t seed) {
  const auto j = ordered_json::parse(read_file(file));
  CellResult r{model, task, seed, true, "", {}};
  for (const auto& [name, value] : j.at("metrics").items())
    r.metrics.emplace_back(name, value.is_number() ? value.get<double>() : std::nan(""));
  if (j.contains("extra") && j["extra"].is_object() && j["extra"].contains("items") && j["extra"]["items"].is_object()) {
    for (const auto& [name, value] : j["extra"]["items"].items()) {
      try {
        r.items[name] = stats::item_scores_from_json(nlohmann::json::parse(value.dump()));
      } catch (const std::exception& e) {
        warn(file.string(), ": per-item scores of '", name, "' unreadable (", e.what(), "); no interval for it");
      }
    }
  }
  return r;
}

struct Runner {
  const Config& config;
  const RunOptions& options;
  fs::path cells_dir, logs_dir, runs_dir;

  void common_args(std::vector<std::string>& argv) const {
    if (options.threads > 0) {
      argv.push_back("--threads");
      argv.push_back(std::to_string(options.threads));
    }
    for (const auto& p : options.plugin_paths) {
      argv.push_back("--plugin-path");
      argv.push_back(p);
    }
  }

  // Trains (or reuses) one recipe model at one seed; returns an error message or "".
  std::string ensure_trained(const Model& model, int64_t seed, const fs::path& run_dir, const std::string& identity) {
    const std::string label = model.name + " seed " + std::to_string(seed);
    const fs::path identity_file = run_dir / "bench_identity.txt";
    if (fs::exists(run_dir)) {
      const bool same = fs::exists(identity_file) && read_file(identity_file) == identity;
      const bool finished = fs::exists(run_dir / "summary.json") && fs::is_directory(run_dir / "final");
      if (same && finished && !options.force) {
        std::cout << "train " << label << ": cached (" << run_dir.string() << ")\n";
        return "";
      }
      if (options.force) {
        std::cout << "train " << label << ": --force, moved the old run to " << move_aside(run_dir).string() << "\n";
      } else if (!same) {
        return run_dir.string() + " holds another run (the recipe, its base or `set` changed); pass --force to move it "
               "aside and retrain";
      }
      // Same recipe, unfinished: `--resume` continues from its last checkpoint.
    }
    fs::create_directories(run_dir);
    write_file_atomic(identity_file, identity);
    std::vector<std::string> argv{options.exe, "train", model.recipe.string(), "--out", run_dir.string(), "--resume"};
    for (const auto& s : model.set) {
      argv.push_back("--set");
      argv.push_back(s);
    }
    argv.push_back("--set");
    argv.push_back("train.seed=" + std::to_string(seed));
    // The bench's dtype is its runs' precision too (fp32 by default), so arms compare alike on any machine.
    argv.push_back("--set");
    argv.push_back(std::string("train.precision=") + (options.dtype == "fp32" ? "fp32" : "bf16"));
    common_args(argv);
    const fs::path log = logs_dir / ("train-" + model.name + "-seed" + std::to_string(seed) + ".log");
    std::cout << "train " << label << ": running (log " << log.string() << ")" << std::endl;
    const auto start = std::chrono::steady_clock::now();
    const int status = run_process(argv, log);
    if (status != 0 || !fs::exists(run_dir / "summary.json"))
      return "training failed (exit " + std::to_string(status) + "): " + log_error(log) + " [log " + log.string() + "]";
    std::cout << "train " << label << ": done in " << fmt_seconds(seconds_since(start)) << "\n";
    return "";
  }

  CellResult run_cell(const Model& model, const Task& task, int64_t seed, const fs::path& model_dir,
                      const std::string& identity, const fs::path& cell_file) {
    const fs::path partial = cells_dir / (cell_file.stem().string() + ".partial.json");
    const fs::path log = logs_dir / (model.name + "-" + task.label + "-seed" + std::to_string(seed) + ".log");
    std::vector<std::string> argv{options.exe, "eval", task.task, "--model", model_dir.string(), "--out", partial.string(),
                                  "--device", options.device, "--dtype", options.dtype};
    for (const auto& [k, v] : task.options) {
      argv.push_back("--option");
      argv.push_back(k + "=" + v);
    }
    if (task.has_seed) {
      argv.push_back("--option");
      argv.push_back("seed=" + std::to_string(seed));
    }
    common_args(argv);
    fs::remove(partial);
    const int status = run_process(argv, log);
    CellResult failed{model.name, task.label, seed, false, "", {}};
    if (status != 0 || !fs::exists(partial)) {
      failed.error = "exit " + std::to_string(status) + ": " + log_error(log) + " [log " + log.string() + "]";
      return failed;
    }
    auto j = ordered_json::parse(read_file(partial));
    ordered_json command = ordered_json::array();
    for (const auto& a : argv) command.push_back(a);
    j["bench"] = {{"model", model.name}, {"task", task.label}, {"seed", seed},   {"key", cell_file.stem().string()},
                  {"identity", identity}, {"bench_file", config.file.string()}, {"command", command}};
    write_file_atomic(cell_file, j.dump(1) + "\n");
    fs::remove(partial);
    return read_cell(cell_file, model.name, task.label, seed);
  }
};

}  // namespace

int64_t run_bench(const Config& config, const RunOptions& options) {
  Runner runner{config, options, config.output / "cells", config.output / "logs", config.output / "runs"};
  ensure_writable_dir(config.output);
  for (const auto& d : {runner.cells_dir, runner.logs_dir}) fs::create_directories(d);
  ReportInputs report;
  const size_t total = config.models.size() * config.tasks.size() * config.seeds.size();
  size_t index = 0;
  int64_t failures = 0;
  const auto bench_start = std::chrono::steady_clock::now();
  for (const auto& model : config.models) {
    const std::string path_identity = model.trained() ? "" : folder_identity(model.path);
    for (const auto seed : config.seeds) {
      std::string identity = path_identity, train_error;
      fs::path model_dir = model.path;
      if (model.trained()) {
        const fs::path run_dir = runner.runs_dir / (model.name + "-seed" + std::to_string(seed) +
                                                     (options.dtype == "fp32" ? "" : "-" + options.dtype));
        model_dir = run_dir / "final";
        report.runs[model.name].push_back({seed, run_dir});
        try {
          auto overrides = model.set;
          overrides.push_back("train.seed=" + std::to_string(seed));
          const Recipe recipe = Recipe::load(model.recipe, overrides);
          identity = "recipe " + model.recipe.string() + "\nseed " + std::to_string(seed) + "\n" + recipe.identity_text();
          if (options.dtype != "fp32") identity += "\nprecision bf16";  // float32 runs keep their earlier identity
          train_error = runner.ensure_trained(model, seed, run_dir, identity);
        } catch (const std::exception& e) {
          train_error = std::string("training not started: ") + e.what();
        }
        if (!train_error.empty()) std::cout << "train " << model.name << " seed " << seed << ": FAILED: " << train_error << "\n";
      }
      for (const auto& task : config.tasks) {
        ++index;
        const std::string label = "[" + std::to_string(index) + "/" + std::to_string(total) + "] " + model.name + " × " +
                                  task.label + " seed " + std::to_string(seed);
        // A float32 cell keeps the key it had before --dtype existed; other dtypes are cells of their own.
        const std::string key =
            cell_key(options.dtype == "fp32" ? identity : identity + "\ndtype " + options.dtype, task, seed);
        const fs::path cell_file = runner.cells_dir / (key + ".json");
        report.cell_files[model.name + "/" + task.label + "/" + std::to_string(seed)] = cell_file;
        CellResult result{model.name, task.label, seed, false, "", {}};
        bool done = false;
        if (fs::exists(cell_file)) {
          if (options.force) {
            std::cout << label << ": --force, moved the old result to "
                      << move_aside(cell_file, ".json").filename().string() << "\n";
          } else {
            try {
              result = read_cell(cell_file, model.name, task.label, seed);
              std::cout << label << ": cached (" << cell_file.filename().string() << ")\n";
              done = true;
            } catch (const std::exception& e) {
              warn(cell_file.string(), ": unreadable (", e.what(), "); moved to ",
                   move_aside(cell_file, ".json").string(), " and running the cell again");
            }
          }
        }
        if (!done && !train_error.empty()) {
          result.error = train_error;
          std::cout << label << ": FAILED (model not trained)\n";
          done = true;
        }
        if (!done) {
          std::cout << label << ": running" << std::endl;
          const auto start = std::chrono::steady_clock::now();
          try {
            result = runner.run_cell(model, task, seed, model_dir, identity, cell_file);
          } catch (const std::exception& e) {
            result.ok = false;
            result.error = e.what();
          }
          std::cout << label << ": " << (result.ok ? "done in " + fmt_seconds(seconds_since(start)) : "FAILED: " + result.error)
                    << std::endl;
        }
        if (!result.ok) ++failures;
        report.cells.push_back(std::move(result));
      }
    }
  }
  write_reports(config, report);
  std::cout << "bench: " << total - static_cast<size_t>(failures) << " of " << total << " cells succeeded in "
            << fmt_seconds(seconds_since(bench_start)) << "; results in " << (config.output / "results.md").string() << ", "
            << (config.output / "results.csv").string() << ", plots in " << (config.output / "plots").string() << "\n";
  return failures;
}

}  // namespace sapling::bench
