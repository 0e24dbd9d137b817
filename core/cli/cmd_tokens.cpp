// `sapling tokens`: structure files in, one structure-token FASTA and one residue FASTA out (each tokenizer's view of a file).
#include <iostream>

#include "command.hpp"
#include "component_options.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/log.hpp"
#include "sapling/structure_io.hpp"
#include "sapling/internal/tokenize.hpp"

namespace sapling::cli::tokens_command {  // one namespace per command: the CLI is a unity build
namespace {

std::vector<std::string> strings(const po::variables_map& vm, const char* key) {
  return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("tokenizer", po::value<std::string>(), "structure tokenizer (default: the plugins' default, foldseek_3di)")(
      "input", po::value<std::vector<std::string>>()->multitoken(), "structure files or folders (.pdb/.cif[.gz])")(
      "out", po::value<std::string>(), "output prefix: writes PREFIX.<tag>.fasta (3di for Foldseek) and PREFIX.aa.fasta")(
      "tokenizer-option", po::value<std::vector<std::string>>(), "tokenizer option key=value (repeatable)")(
      "option", po::value<std::vector<std::string>>(), "old name of --tokenizer-option")(
      "residues", po::value<std::string>(), "shorthand for --tokenizer-option residues=VALUE (foldseek_3di: foldseek|all)")(
      "strict", "stop at the first file that cannot be read")(
      "plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  const std::string usage =
      "usage: sapling tokens --input PATH... --out PREFIX [--tokenizer NAME] [--tokenizer-option key=value]... "
      "[--strict]";
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);
  if (!vm.count("input") || !vm.count("out")) fail("expected --input and --out\n", usage);
  load_plugins(strings(vm, "plugin-path"));

  const auto& registry = StructureTokenizerRegistry::instance();
  const std::string name = vm.count("tokenizer") ? vm["tokenizer"].as<std::string>() : registry.default_name("--tokenizer NAME");
  std::vector<std::string> pairs = strings(vm, "tokenizer-option");
  for (const auto& pair : strings(vm, "option")) pairs.push_back(pair);
  if (vm.count("residues")) pairs.push_back("residues=" + vm["residues"].as<std::string>());
  const auto& entry = registry.find(name);
  const auto tokenizer = entry.factory(options_from_pairs(entry.schema, pairs, "--tokenizer-option", "tokenizer"));

  const std::filesystem::path prefix = vm["out"].as<std::string>();
  ensure_writable_dir(prefix.parent_path().empty() ? std::filesystem::path(".") : prefix.parent_path());
  std::vector<std::filesystem::path> inputs;
  for (const auto& in : vm["input"].as<std::vector<std::string>>()) inputs.emplace_back(in);
  const auto files = find_structure_files(inputs);
  if (files.empty()) fail("no structure files (.pdb, .ent, .cif, .mmcif, optionally .gz) in the inputs");

  const TokenizeReport report = tokenize_files(files, *tokenizer, prefix, vm.count("strict") != 0, torch::get_num_threads());
  for (const auto& failure : report.failures) warn("skipping ", failure);
  std::cout << "tokens: " << report.files_read << " of " << report.files << " files, " << report.chains << " chains, "
            << report.residues << " residues in " << report.seconds << " s ("
            << (report.seconds > 0 ? report.files_read / report.seconds : 0.0) << " structures/s, " << report.threads
            << " thread" << (report.threads == 1 ? "" : "s") << ")\n";
  if (report.skipped) std::cout << "skipped " << report.skipped << " " << report.skip_rule << "\n";
  std::cout << "wrote " << report.tokens_fasta.string() << " and " << report.residues_fasta.string() << "\n";
  if (!report.failures.empty()) {
    std::cout << report.failures.size() << " file" << (report.failures.size() == 1 ? "" : "s") << " could not be read:\n";
    for (const auto& f : report.failures) std::cout << "  " << f << "\n";
  }
  return 0;
}

Register reg("tokens", "structure files -> structure-token FASTA (e.g. Foldseek 3Di) and residue FASTA", run);

}  // namespace
}  // namespace sapling::cli::tokens_command
