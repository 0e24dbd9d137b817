// `sapling plugins list`: loaded plugins, what each registers, and libraries that failed to load.
#include <iostream>
#include <type_traits>

#include "command.hpp"
#include "sapling/error.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "sapling/pretraining.hpp"

namespace sapling::cli::plugins_command {  // one namespace per command: the CLI is a unity build
namespace {

// What a loss listing this field receives per residue: dtype and shape, from the provider built with its defaults.
void describe_field(const Registration<FieldProvider>& entry) {
  try {
    const auto provider = entry.factory(Options::defaults(entry.schema));
    std::cout << "        gives per residue: " << c10::toString(provider->dtype()) << " [L";
    for (const auto d : provider->residue_shape()) std::cout << ", " << d;
    std::cout << "] (LossInputs::fields[\"" << entry.name << "\"] for losses that list it)\n";
  } catch (const Error& e) {
    std::cout << "        cannot be built with its defaults: " << e.what() << "\n";
  }
}

template <typename I>
void print_components(const std::string& plugin, bool verbose) {
  for (const auto& [name, entry] : Registry<I>::instance().entries()) {
    if (entry.plugin != plugin) continue;
    std::cout << "    " << I::kind << " " << name << (entry.description.empty() ? "" : ": " + entry.description) << "\n";
    if (!verbose) continue;
    if (!entry.fields.empty()) {  // what the trainer must feed it (a loss's per-residue inputs)
      std::cout << "        reads per-residue fields:";
      for (const auto& field : entry.fields) std::cout << " " << field;
      std::cout << "\n";
    }
    if constexpr (std::is_same_v<I, FieldProvider>) describe_field(entry);
    std::cout << entry.schema.describe("        ");
  }
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("action", po::value<std::string>()->default_value("list"), "list")(
      "verbose,v", "also show each component's options")("path", po::value<std::vector<std::string>>(),
                                                          "extra plugin folder (repeatable)");
  po::positional_options_description pos;
  pos.add("action", 1);
  po::variables_map vm;
  if (!parse_args(args, desc, pos, vm, "usage: sapling plugins list [--verbose] [--path DIR]")) return 0;
  apply_common_options(vm);
  if (vm["action"].as<std::string>() != "list")
    fail("unknown action '", vm["action"].as<std::string>(), "' (expected: list)");
  load_plugins(vm.count("path") ? vm["path"].as<std::vector<std::string>>() : std::vector<std::string>{},
               /*report_failures=*/false);  // listed below
  auto& manager = PluginManager::instance();
  std::cout << "search path:\n";
  for (const auto& dir : manager.search_path()) std::cout << "  " << dir.string() << "\n";
  std::cout << "plugins:\n";
  const bool verbose = vm.count("verbose") != 0;
  for (const auto& p : manager.loaded()) {
    std::cout << "  " << p.name << " (" << p.path << ", API " << p.api_version << ", LibTorch " << p.torch_version
              << ")" << (p.description.empty() ? "" : ": " + p.description) << "\n";
    print_components<SequenceEncoder>(p.name, verbose);
    print_components<StructureEncoder>(p.name, verbose);
    print_components<StructureTokenizer>(p.name, verbose);
    print_components<AlignmentLoss>(p.name, verbose);
    print_components<ResidueSelector>(p.name, verbose);
    print_components<FieldProvider>(p.name, verbose);
    print_components<StructurePretrainingObjective>(p.name, verbose);
    print_components<EvaluationTask>(p.name, verbose);
  }
  if (!manager.failures().empty()) {
    std::cout << "failed to load:\n";
    for (const auto& f : manager.failures()) std::cout << "  " << f.path << ": " << f.reason << "\n";
  }
  return 0;
}

Register reg("plugins", "list plugins, what they register, and load failures", run);

}  // namespace
}  // namespace sapling::cli::plugins_command
