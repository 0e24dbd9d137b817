// Helpers shared by tests: paths to the repository, fixtures and named data sets, the CLI, and running commands.
#pragma once
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <sys/wait.h>  // for WIFEXITED
#include <unistd.h>    // for getpid

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>  // for std::hash
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "sapling/internal/data_registry.hpp"
#include "sapling/plugin.hpp"
#include "sapling/structure.hpp"

namespace sapling::test {

inline std::filesystem::path source_dir() { return SAPLING_SOURCE_DIR; }
inline std::filesystem::path binary_dir() { return SAPLING_BINARY_DIR; }
// The project's data mirror (../shared beside the checkout, in CI and development). A user's clone has none:
// tests reach big data only through data_set() below. SAPLING_SHARED_DIR overrides it (an absent folder
// shows what a clone sees).
inline std::filesystem::path shared_dir() {
  const char* env = std::getenv("SAPLING_SHARED_DIR");
  return env ? std::filesystem::path(env) : std::filesystem::path(SAPLING_SHARED_DIR);
}
// The Python with PyTorch and NumPy that the golden and reader tests run: the project's .venv (the torch wheel
// LibTorch comes from), or Debian's /usr/bin/python3 with python3-torch in a SAPLING_LIBTORCH=system build.
// SAPLING_PYTHON in the environment overrides it.
inline std::string python() {
  const char* env = std::getenv("SAPLING_PYTHON");
  return env ? std::string(env) : std::string(SAPLING_TEST_PYTHON);
}
// Small golden fixtures, in the repository (tests/fixtures/README.md).
inline std::filesystem::path fixtures_dir() { return source_dir() / "tests" / "fixtures"; }

// The repository's data manifest (datasets/manifest.toml), loaded once.
inline const DataManifest& test_manifest() {
  static const auto manifest = DataManifest::load(source_dir() / "datasets" / "manifest.toml");
  return manifest;
}

// The data folder holding a named data set (its files under <folder>/<set.path>), or an empty path when it is
// not available. Looks in $SAPLING_DATA_DIR (what `sapling data fetch` filled), then fetches from the mirror
// ($SAPLING_DATA_MIRROR, else ../shared) into the build folder's test-data/, verifying every checksum, once per build.
inline std::filesystem::path data_root(const std::string& name) {
  const auto& set = test_manifest().find(name);
  if (const char* dir = std::getenv("SAPLING_DATA_DIR"); dir && data_set_status(set, dir) == DataStatus::Present)
    return dir;
  const auto cache = binary_dir() / "test-data";
  if (data_set_status(set, cache) == DataStatus::Present) return cache;
  const char* env_mirror = std::getenv("SAPLING_DATA_MIRROR");
  const std::filesystem::path mirror = env_mirror ? std::filesystem::path(env_mirror) : shared_dir();
  if (!std::filesystem::is_directory(mirror / set.path)) return {};
  fetch_data_set(set, mirror, cache);
  return cache;
}

// The folder of a named data set, or an empty path when it is not available (see data_root).
inline std::filesystem::path data_set(const std::string& name) {
  const auto root = data_root(name);
  return root.empty() ? root : root / test_manifest().find(name).path;
}

// Makes a data set available and points $SAPLING_DATA_DIR (inherited by the CLI, read by the evaluation tasks'
// default data) at the folder holding it; false when it is not available.
inline bool use_data_set(const std::string& name) {
  const auto root = data_root(name);
  if (root.empty()) return false;
  ::setenv("SAPLING_DATA_DIR", root.c_str(), 1);
  return true;
}

// A test that cannot run here says why and ends. Under ctest (which sets SAPLING_TEST_SKIP_CODE and declares
// it as SKIP_RETURN_CODE, tests/CMakeLists.txt) the process exits with that code, so the summary counts the test
// as skipped, not passed; run by hand, the test passes with a warning and the binary goes on with the next.
inline bool skip_test_process(const std::string& reason) {
  const char* code = std::getenv("SAPLING_TEST_SKIP_CODE");
  if (!code || !*code) return false;
  std::cout << "SKIPPED: " << reason << std::endl;
  std::exit(std::atoi(code));
}

// Ends the current test as skipped, saying why (`reason` is streamed: SAPLING_SKIP("needs " << n << " GPUs")).
#define SAPLING_SKIP(reason)                                      \
  do {                                                            \
    std::ostringstream skip_reason_;                              \
    skip_reason_ << reason;                                       \
    ::sapling::test::skip_test_process(skip_reason_.str());       \
    WARN("skipped: " << skip_reason_.str());                      \
    return;                                                       \
  } while (0)

// A test that needs a data set starts with SAPLING_REQUIRE_DATA("bm5"): without it, the test is skipped,
// saying why (README command 2 from a clone alone); CI, which has the mirror, runs it.
#define SAPLING_REQUIRE_DATA(name)                                                                              \
  do {                                                                                                           \
    if (!::sapling::test::use_data_set(name))                                                                    \
      SAPLING_SKIP("data set '" << (name) << "' is not available (sapling data fetch " << (name)                 \
                                << " --mirror DIR, or set SAPLING_DATA_DIR)");                                   \
  } while (0)

// The folder of a data set the test has required; an error if it is absent.
inline std::filesystem::path data_path(const std::string& name) {
  auto dir = data_set(name);
  if (dir.empty()) throw std::runtime_error("data set '" + name + "' is not available; require it first (SAPLING_REQUIRE_DATA)");
  return dir;
}
inline std::string sapling_exe() { return SAPLING_EXE; }

// A path single-quoted for the shell commands the CLI tests run (test paths hold no quotes).
inline std::string quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

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

// The bundled BM5 + PSICOV sample as the published recipe wants it: observed-residue sequences, 3Di tokens,
// embeddings of the bundled GearNet (6 x 128, layers concatenated), complexes split 20% valid and 40% held out
// for the reference model (reference_train / reference_valid; seed 6 gives both of them high-quality chains,
// which few of the sample's 79 chains are). GearNet takes about a minute for it, and ctest runs each test case
// in its own process, so it is prepared once per build: cached under the build folder, keyed by the
// executables that write it (a rebuilt CLI or plugin prepares it anew), written to a temporary folder and
// renamed into place so concurrent tests never see half a dataset.
inline const std::filesystem::path& sample_dataset() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    const auto src = source_dir();
    const std::string flags =
        " --tokenizer foldseek_3di --valid-fraction 0.2 --reference-fraction 0.4 --seed 6 --pgnn gearnet"
        " --pgnn-weights " + quote(src / "datasets/models/gearnet_edge_mc_6x128.safetensors") +
        " --pgnn-option 'hidden_dims=[128,128,128,128,128,128]'";
    uint64_t key = std::hash<std::string>{}(flags);
    for (const fs::path& writer : {fs::path(sapling_exe()), binary_dir() / "libsapling_core.so",
                                   fs::path(SAPLING_PLUGIN_DIR) / "sapling_gearnet.so",
                                   fs::path(SAPLING_PLUGIN_DIR) / "sapling_foldseek_3di.so"}) {
      std::error_code ec;
      const auto stamp = fs::last_write_time(writer, ec).time_since_epoch().count();
      key = key * 1099511628211ULL ^ static_cast<uint64_t>(ec ? 0 : stamp);
    }
    const auto cached = binary_dir() / "test-cache" / ("sample-dataset-" + std::to_string(key));
    if (fs::exists(cached / "index.json")) return cached;
    // Staged beside the cache (one file system, so the rename is atomic).
    const auto staging = cached.parent_path() / ("staging-" + std::to_string(::getpid()));
    fs::remove_all(staging);
    fs::create_directories(cached.parent_path());
    const auto r = run_command(sapling_exe() + " prepare " + quote(src / "datasets/sample/bm5") + " " +
                               quote(src / "datasets/sample/psicov") + " --out " + quote(staging) + flags + " --quiet");
    if (r.exit_code != 0) throw std::runtime_error("preparing the sample dataset failed: " + r.output);
    std::error_code ec;
    fs::rename(staging, cached, ec);  // fails harmlessly when a concurrent test got there first
    if (!ec) return cached;
    if (!fs::exists(cached / "index.json")) return staging;
    fs::remove_all(staging, ec);
    return cached;
  }();
  return dir;
}

// `sapling train RECIPE` (a name under recipes/) from `model` on the bundled sample dataset, small: no
// accumulation, crops of 128 residues, 4 proteins per micro-batch, 2 validation batches every 2 steps, float32
// (the golden and parity tests compare at float32 tolerances on any CPU; a later --set in `extra` wins).
inline std::string small_train_command(const std::string& recipe, const std::filesystem::path& model,
                                       const std::filesystem::path& out, const std::string& extra) {
  return sapling_exe() + " train " + quote(source_dir() / "recipes" / recipe) + " --out " + quote(out) +
         " --set model.path=" + quote(model) + " --set data.dataset=" + quote(sample_dataset()) +
         " --set train.global_batch=0 --set train.accumulate=1 --set data.max_length=128 --set data.proteins_per_batch=4"
         " --set train.valid_max_batches=2 --set train.valid_every=2 --set train.precision=fp32 --threads 2 " +
         extra;
}

// A reference model: `recipe` trained 2 steps from `model` by small_train_command, in a temporary folder
// named by `tag`; returns the run folder (its best/ is the reference_model.path). Fails the test on error.
inline std::filesystem::path small_reference_run(const std::string& recipe, const std::filesystem::path& model,
                                                 const std::string& tag) {
  const auto out = temp_dir(tag) / "reference";
  const auto r = run_command(small_train_command(recipe, model, out, "--max-steps 2"));
  if (r.exit_code != 0) throw std::runtime_error("reference training (" + recipe + ") failed: " + r.output);
  return out;
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
// Equal tensors, NaN positions included (integer and bool tensors compared as they are); two undefined ones are equal.
inline bool same_values(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  if (a.sizes() != b.sizes()) return false;
  if (!a.is_floating_point()) return torch::equal(a, b);
  return torch::equal(torch::isnan(a), torch::isnan(b)) && torch::equal(torch::nan_to_num(a), torch::nan_to_num(b));
}

// The same chain: names, header facts and every per-residue array.
inline void check_same_chain(const ChainStructure& got, const ChainStructure& want) {
  INFO(want.entry << " " << want.chain);
  CHECK(got.entry == want.entry);
  CHECK(got.chain == want.chain);
  CHECK(got.sequence == want.sequence);
  CHECK(got.method == want.method);
  CHECK(got.resolution == want.resolution);
  CHECK(got.r_free == want.r_free);
  CHECK(same_values(got.coords, want.coords));
  CHECK(torch::equal(got.observed, want.observed));
  CHECK(same_values(got.bfactor, want.bfactor));
}

inline double scaled_max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const double diff = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
  const double scale = std::max(1.0, b.to(torch::kFloat64).abs().max().item<double>());
  return diff / scale;
}

}  // namespace sapling::test
