// The `sapling` executable: dispatches to subcommands and turns errors into one-line messages.
#include <torch/torch.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "command.hpp"
#include "sapling/internal/allocator.hpp"
#include "sapling/error.hpp"
#include "sapling/log.hpp"
#include "sapling/options.hpp"  // for did_you_mean
#include "sapling/plugin.hpp"

namespace sapling::cli {

std::vector<Command>& commands() {
  static std::vector<Command> table;
  return table;
}

Register::Register(std::string name, std::string summary, std::function<int(const std::vector<std::string>&)> run) {
  commands().push_back({std::move(name), std::move(summary), std::move(run)});
}

void add_common_options(po::options_description& desc) {
  desc.add_options()("help,h", "show this help")(
      "threads", po::value<int>(),
      "intra-op CPU threads (default: SAPLING_NUM_THREADS, else every core)")("quiet,q", "only print warnings and errors");
}

bool parse_args(const std::vector<std::string>& args, const po::options_description& desc,
                const po::positional_options_description& positional, po::variables_map& vm, const std::string& usage) {
  try {
    po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << desc << std::endl;
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    fail(e.what(), " (see --help)");
  }
  return true;
}

void apply_common_options(const po::variables_map& vm) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("SAPLING_NUM_THREADS")) threads = std::atoi(env);
  if (vm.count("threads")) threads = vm["threads"].as<int>();
  if (threads < 1) fail("--threads must be at least 1");
  // Debian's LibTorch starts with one intra-op thread: set it deliberately.
  torch::set_num_threads(threads);
  if (vm.count("quiet")) set_log_level(LogLevel::Warning);
}

void add_encoder_option(po::options_description& desc) {
  desc.add_options()("encoder", po::value<std::string>()->default_value(""),
                     "sequence encoder (registry name, e.g. esm2; default: from config.json)")(
      "plugin", po::value<std::string>(), "old name of --encoder");
}

std::string encoder_option(const po::variables_map& vm) {
  if (!vm.count("plugin")) return vm["encoder"].as<std::string>();
  warn("--plugin is now called --encoder (it names a registered encoder, not a library); sapling 0.2 still reads "
       "the old name, the next release will not");
  if (!vm["encoder"].as<std::string>().empty()) fail("--encoder and its old name --plugin are both given; keep --encoder");
  return vm["plugin"].as<std::string>();
}

torch::Device parse_device(const std::string& name) {
  try {
    return torch::Device(name);
  } catch (const std::exception&) {
    fail("--device '", name, "': expected cpu or cuda[:N]");
  }
}

void load_plugins(const std::vector<std::string>& extra, bool report_failures) {
  std::vector<std::filesystem::path> dirs(extra.begin(), extra.end());
  PluginManager::instance().load_search_path(dirs);
  // Each library that did not load is said once, so that a missing component is never a mystery
  // (`sapling plugins list` lists them itself, hence report_failures = false there).
  static size_t said = 0;
  const auto& failures = PluginManager::instance().failures();
  for (; report_failures && said < failures.size(); ++said) warn("plugin ", failures[said].path, ": ", failures[said].reason);
}

}  // namespace sapling::cli

namespace {

void print_usage() {
  std::cout << "sapling: structure-aligned protein language models\n\nusage: sapling <command> [options]\n\ncommands:\n";
  auto cmds = sapling::cli::commands();
  std::sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& c : cmds) std::cout << "  " << c.name << std::string(c.name.size() < 10 ? 10 - c.name.size() : 1, ' ') << c.summary << "\n";
  std::cout << "\n`sapling <command> --help` describes each command.\n";
}

}  // namespace

int main(int argc, char** argv) {
  sapling::tune_allocator_for_tensors();
  // A write past the file-size limit (ulimit -f) would kill the process with SIGXFSZ, mid-checkpoint and
  // without a word; ignored, the write fails with EFBIG and ends as one error like a full disk (ENOSPC).
  std::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    print_usage();
    return argc < 2 ? 1 : 0;
  }
  const std::string name = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : sapling::cli::commands()) {
    if (c.name != name) continue;
    try {
      return c.run(args);
    } catch (const sapling::Error& e) {
      std::cerr << "error: " << e.what() << std::endl;
      return 1;
    } catch (const c10::Error& e) {
      // LibTorch errors carry a C++ backtrace: print only the first line.
      std::string msg = e.what_without_backtrace();
      std::cerr << "error: " << msg.substr(0, msg.find('\n')) << std::endl;
      return 1;
    } catch (const std::bad_alloc&) {
      std::cerr << "error: out of memory" << std::endl;
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << std::endl;
      return 1;
    }
  }
  std::vector<std::string> names;
  for (const auto& c : sapling::cli::commands()) names.push_back(c.name);
  std::cerr << "error: unknown command '" << name << "'" << sapling::did_you_mean(name, names)
            << "; run `sapling --help`" << std::endl;
  return 1;
}
