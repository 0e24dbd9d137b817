// Helpers shared by tests: paths to the repository, ../shared, the CLI, and running commands.
#pragma once
#include <torch/torch.h>

#include <sys/wait.h>  // for WIFEXITED
#include <unistd.h>    // for getpid

#include <cstdio>
#include <filesystem>
#include <string>

#include "sapling/plugin.hpp"

namespace sapling::test {

inline std::filesystem::path source_dir() { return SAPLING_SOURCE_DIR; }
inline std::filesystem::path shared_dir() { return SAPLING_SHARED_DIR; }
inline std::filesystem::path binary_dir() { return SAPLING_BINARY_DIR; }
inline std::string sapling_exe() { return SAPLING_EXE; }

// A fresh temporary folder per call, removed by the caller if it wishes.
inline std::filesystem::path temp_dir(const std::string& tag) {
  static int counter = 0;
  auto dir = std::filesystem::temp_directory_path() /
             ("sapling-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command and captures its output and exit status.
inline CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// Loads the build's plugins once (the public path users take).
inline void load_build_plugins() {
  static bool done = [] {
    PluginManager::instance().load_directory(SAPLING_PLUGIN_DIR);
    return true;
  }();
  (void)done;
}

// max |a - b| / max(1, max |b|): the parity measure ("relative to the tensor's scale").
inline double scaled_max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const double diff = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
  const double scale = std::max(1.0, b.to(torch::kFloat64).abs().max().item<double>());
  return diff / scale;
}

}  // namespace sapling::test
