// sapling-conformance: runs every conformance check on every component one plugin registers, and reports each
// failing component by name with the reason. Usage: sapling-conformance PLUGIN.so|NAME [--examples FILE] [--verbose]
#include <unistd.h>  // for getpid

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "checks.hpp"
#include "sapling/internal/allocator.hpp"
#include "sapling/options.hpp"  // for did_you_mean
#include "sapling/plugin.hpp"
#include "sapling/registry.hpp"

namespace fs = std::filesystem;
using namespace sapling;
using namespace sapling::conformance;

namespace {

constexpr const char* kUsage =
    "usage: sapling-conformance PLUGIN [--examples FILE] [--verbose]\n"
    "  PLUGIN          a plugin library (path/to/sapling_NAME.so), or a plugin name found on the plugin search path\n"
    "                  (SAPLING_PLUGIN_PATH, then the installed plugins)\n"
    "  --examples FILE the plugin's conformance examples (its conformance.toml): options and inputs per component\n"
    "  --verbose       print each check's notes (measured differences)\n"
    "  --threads N     intra-op CPU threads (default: SAPLING_NUM_THREADS, else LibTorch's default)\n"
    "Runs every check that applies to each component the plugin registers; exits 1 if any failed.\n";

struct Arguments {
  std::string plugin;
  fs::path examples;
  bool verbose = false;
  int threads = 0;  // 0: SAPLING_NUM_THREADS, else LibTorch's default
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  for (int k = 1; k < argc; ++k) {
    const std::string arg = argv[k];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--examples" && k + 1 < argc) {
      a.examples = argv[++k];
    } else if (arg == "--threads" && k + 1 < argc) {
      a.threads = std::atoi(argv[++k]);
      if (a.threads < 1) fail("--threads must be at least 1");
    } else if (arg == "--verbose") {
      a.verbose = true;
    } else if (!arg.empty() && arg[0] != '-' && a.plugin.empty()) {
      a.plugin = arg;
    } else {
      fail("unexpected argument '", arg, "'\n", kUsage);
    }
  }
  if (a.plugin.empty()) fail("no plugin given\n", kUsage);
  return a;
}

// Loads the plugin under test first (so an installed copy of it does not shadow it), then the search path for
// the components its checks need from other plugins (a tokenizer that writes a token file, a model for tasks).
std::string load(const std::string& plugin) {
  auto& manager = PluginManager::instance();
  const bool is_file = plugin.find('/') != std::string::npos || fs::path(plugin).extension() == ".so";
  if (is_file) {
    if (!fs::is_regular_file(plugin)) fail(plugin, ": no such plugin library");
    if (!manager.load_file(fs::absolute(plugin))) fail(plugin, ": cannot load: ", manager.failures().back().reason);
  }
  manager.load_search_path();
  if (is_file) return manager.loaded().front().name;
  if (!manager.is_loaded(plugin)) {
    std::string searched;
    for (const auto& dir : manager.search_path()) searched += " " + dir.string();
    fail("no plugin named '", plugin, "' on the plugin search path (", searched, " )");
  }
  return plugin;
}

struct Component {
  std::string kind, name;
};

std::vector<Component> components_of(const std::string& plugin) {
  std::vector<Component> out;
  for (const auto& item : RegistrationLog::items())
    if (item.plugin == plugin) out.push_back({item.kind, item.name});
  return out;
}

// A table for a component that no loaded plugin registers is a typo: an error naming it, not silently unused.
void check_examples_name_components(const Examples& examples) {
  std::vector<std::string> known;
  for (const auto& item : RegistrationLog::items()) known.push_back(item.kind + "." + item.name);
  for (const auto& [kind, name] : examples.components()) {
    const std::string key = kind + "." + name;
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(examples.file().string(), ": [", key, "] names no registered component", did_you_mean(key, known));
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    tune_allocator_for_tensors();
    const Arguments args = parse(argc, argv);
    // One thread per test when ctest runs them side by side (scripts/test.sh sets SAPLING_NUM_THREADS=1).
    const char* env_threads = std::getenv("SAPLING_NUM_THREADS");
    if (args.threads > 0)
      torch::set_num_threads(args.threads);
    else if (env_threads && std::atoi(env_threads) > 0)
      torch::set_num_threads(std::atoi(env_threads));
    const std::string plugin = load(args.plugin);
    const Examples examples = args.examples.empty() ? Examples() : Examples::load(args.examples);
    const auto structures = examples.structures();
    const Fixtures fixtures = Fixtures::read(structures.empty() ? bundled_structures() : structures);
    const auto components = components_of(plugin);
    std::cout << "conformance of plugin '" << plugin << "'"
              << (examples.file().empty() ? std::string(" (no examples file)") : " with " + examples.file().string())
              << ": " << components.size() << " component(s)\n";
    if (components.empty()) fail("plugin '", plugin, "' registers no component");
    check_examples_name_components(examples);
    const auto scratch_root = fs::temp_directory_path() / ("sapling-conformance-" + std::to_string(::getpid()));
    const auto checks = all_checks();
    int passed = 0, skipped = 0, failed_checks = 0;
    std::vector<std::string> failed_components;
    for (const auto& component : components) {
      bool component_ok = true;
      int index = 0;
      for (const auto& check : checks) {
        if (check.kind != component.kind) continue;
        const auto scratch = scratch_root / (component.kind + "-" + component.name + "-" + std::to_string(index++));
        fs::create_directories(scratch);
        Checker checker;
        const auto started = std::chrono::steady_clock::now();
        try {
          check.run(checker, component.name, RunContext{examples, fixtures, scratch});
        } catch (const Error& e) {
          checker.failure(e.what());
        } catch (const std::exception& e) {
          checker.failure(std::string("unexpected exception (not a sapling::Error): ") + e.what());
        }
        std::error_code ec;
        fs::remove_all(scratch, ec);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        const std::string label = component.kind + " " + component.name + ": " + check.what +
                                  (seconds >= 1 ? " (" + std::to_string(static_cast<int>(seconds + 0.5)) + " s)" : "");
        if (!checker.failures().empty()) {
          component_ok = false;
          ++failed_checks;
          std::cout << "  FAIL " << label << "\n";
          for (const auto& f : checker.failures()) std::cout << "       - " << f << "\n";
        } else if (!checker.skipped().empty()) {
          ++skipped;
          std::cout << "  skip " << label << " (" << checker.skipped() << ")\n";
        } else {
          ++passed;
          std::cout << "  ok   " << label << "\n";
        }
        if (args.verbose)
          for (const auto& n : checker.notes()) std::cout << "       " << n << "\n";
      }
      if (!component_ok) failed_components.push_back(component.kind + " '" + component.name + "'");
    }
    std::error_code ec;
    fs::remove_all(scratch_root, ec);
    std::cout << "conformance of plugin '" << plugin << "': " << passed << " passed, " << failed_checks << " failed, "
              << skipped << " skipped\n";
    if (!failed_components.empty()) {
      std::cout << "failing components:";
      for (const auto& c : failed_components) std::cout << " " << c;
      std::cout << "\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "sapling-conformance: " << e.what() << "\n";
    return 2;
  }
}
