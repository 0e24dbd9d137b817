// `sapling tokens`: structure files in, one structure-token FASTA and one residue FASTA out (Foldseek createdb's view).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <sstream>
#include <thread>

#include "command.hpp"
#include "foldseek_view.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/log.hpp"
#include "sapling/structure_io.hpp"

namespace sapling::cli {
namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_structure_file(const std::filesystem::path& p) {
  std::string name = lower(p.filename().string());
  if (has_suffix(name, ".gz")) name.erase(name.size() - 3);
  for (const char* ext : {".pdb", ".ent", ".cif", ".mmcif"})
    if (has_suffix(name, ext)) return true;
  return false;
}

bool is_mmcif(const std::filesystem::path& p) {
  std::string name = lower(p.filename().string());
  if (has_suffix(name, ".gz")) name.erase(name.size() - 3);
  return has_suffix(name, ".cif") || has_suffix(name, ".mmcif");
}

// Files as given, folders searched recursively for structure files; sorted
// by path like Foldseek createdb does.
std::vector<std::filesystem::path> collect_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::filesystem::path> files;
  for (const auto& in : inputs) {
    const std::filesystem::path p(in);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file() && is_structure_file(e.path())) files.push_back(e.path());
    } else if (std::filesystem::exists(p)) {
      files.push_back(p);
    } else {
      fail(in, ": no such structure file or folder");
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// --option key=value, typed by the tokenizer's schema and validated like a recipe table.
Options tokenizer_options(const OptionSchema& schema, const std::vector<std::string>& pairs, const std::string& name) {
  toml::table table;
  for (const auto& pair : pairs) {
    const size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) fail("--option '", pair, "': expected key=value");
    const std::string key = pair.substr(0, eq), value = pair.substr(eq + 1);
    const OptionSpec* spec = schema.find(key);
    if (!spec) fail("--option '", pair, "': tokenizer '", name, "' has no option '", key, "'", did_you_mean(key, schema.names()));
    try {
      switch (spec->type) {
        case OptionType::Bool: table.insert_or_assign(key, value == "true" || value == "1"); break;
        case OptionType::Int: table.insert_or_assign(key, static_cast<int64_t>(std::stoll(value))); break;
        case OptionType::Float: table.insert_or_assign(key, std::stod(value)); break;
        case OptionType::String:
        case OptionType::Path: table.insert_or_assign(key, value); break;
        default: fail("--option '", pair, "': list options cannot be set from the command line");
      }
    } catch (const std::logic_error&) {
      fail("--option '", pair, "': '", value, "' is not a valid ", option_type_name(spec->type));
    }
  }
  return Options::from_toml(table, schema, "tokenizer", {});
}

struct ChainTokens {
  std::string name, residues, tokens;
};

struct FileResult {
  std::vector<ChainTokens> chains;
  std::string error;  // empty when the file was read
  int skipped_short = 0;
};

// One file: read (through the Foldseek view for PDB), keep residues with a CA,
// skip chains Foldseek skips (<= 3 residues, or all unknown), encode.
FileResult process_file(const std::filesystem::path& file, const StructureTokenizer& tokenizer, bool foldseek_residues) {
  FileResult result;
  std::string contents = read_maybe_gzipped(file);
  std::string name = file.filename().string();
  if (has_suffix(lower(name), ".gz")) name.erase(name.size() - 3);
  int chain_parts = -1;
  if (foldseek_residues && !is_mmcif(file)) {
    FoldseekPdbView view = foldseek_pdb_view(contents);
    contents = std::move(view.text);
    chain_parts = view.chain_parts;
  }
  StructureReadOptions read_options;
  read_options.use_full_sequence = false;  // the residues in the file, as Foldseek uses them
  const std::vector<ChainStructure> chains = read_structure_from_memory(std::move(contents), name, read_options);
  if (chain_parts < 0) chain_parts = static_cast<int>(chains.size());
  const std::string entry = foldseek_entry_name(file);
  for (const ChainStructure& chain : chains) {
    const torch::Tensor keep = chain.observed.to(torch::kBool);
    const torch::Tensor index = keep.nonzero().squeeze(1);
    ChainStructure observed = chain;
    if (index.numel() != chain.length()) {
      observed.coords = chain.coords.index_select(0, index);
      observed.observed = chain.observed.index_select(0, index);
      if (chain.bfactor.defined()) observed.bfactor = chain.bfactor.index_select(0, index);
      observed.sequence.clear();
      const auto* idx = index.data_ptr<int64_t>();
      for (int64_t k = 0; k < index.numel(); ++k) observed.sequence += chain.sequence[idx[k]];
    }
    const bool all_unknown = observed.sequence.find_first_not_of("Xx") == std::string::npos;
    if (observed.length() <= 3 || all_unknown) {
      ++result.skipped_short;
      continue;
    }
    ChainTokens out;
    out.name = chain_parts > 1 ? entry + "_" + chain.chain : entry;
    out.residues = observed.sequence;
    // One letter per state (3Di); multi-character symbols (VQ code numbers) are space-separated.
    for (int64_t state : tokenizer.encode(observed)) {
      const std::string symbol = tokenizer.symbol(state);
      if (symbol.size() > 1 && !out.tokens.empty()) out.tokens += ' ';
      out.tokens += symbol;
    }
    result.chains.push_back(std::move(out));
  }
  return result;
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("tokenizer", po::value<std::string>()->default_value("foldseek_3di"), "structure tokenizer name")(
      "input", po::value<std::vector<std::string>>()->multitoken(), "structure files or folders (.pdb/.cif[.gz])")(
      "out", po::value<std::string>(), "output prefix: writes PREFIX.3di.fasta and PREFIX.aa.fasta")(
      "option", po::value<std::vector<std::string>>(), "tokenizer option key=value (repeatable)")(
      "residues", po::value<std::string>()->default_value("foldseek"),
      "foldseek: the residues Foldseek createdb encodes (drops a chain's records after its TER, last altloc); "
      "all: every residue with a CA")(
      "strict", "stop at the first file that cannot be read")(
      "plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::positional_options_description pos;
  po::variables_map vm;
  const std::string usage =
      "usage: sapling tokens --input PATH... --out PREFIX [--tokenizer foldseek_3di] [--option key=value]... "
      "[--strict]";
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);
  if (!vm.count("input") || !vm.count("out")) fail("expected --input and --out\n", usage);
  const std::string residues = vm["residues"].as<std::string>();
  if (residues != "foldseek" && residues != "all") fail("--residues '", residues, "': expected foldseek or all");
  const bool strict = vm.count("strict") != 0;
  load_plugins(vm.count("plugin-path") ? vm["plugin-path"].as<std::vector<std::string>>() : std::vector<std::string>{});

  const std::string tokenizer_name = vm["tokenizer"].as<std::string>();
  const auto& entry = StructureTokenizerRegistry::instance().find(tokenizer_name);
  const Options options = tokenizer_options(
      entry.schema, vm.count("option") ? vm["option"].as<std::vector<std::string>>() : std::vector<std::string>{},
      tokenizer_name);
  const std::shared_ptr<StructureTokenizer> tokenizer = entry.factory(options);

  const std::filesystem::path prefix = vm["out"].as<std::string>();
  ensure_writable_dir(prefix.parent_path().empty() ? std::filesystem::path(".") : prefix.parent_path());
  const auto files = collect_inputs(vm["input"].as<std::vector<std::string>>());
  if (files.empty()) fail("no structure files (.pdb, .ent, .cif, .mmcif, optionally .gz) in the inputs");

  // Files are independent: a few workers take the next file; outputs keep input order.
  const auto start = std::chrono::steady_clock::now();
  std::vector<FileResult> results(files.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  const int workers = std::max(1, std::min<int>(torch::get_num_threads(), static_cast<int>(files.size())));
  auto work = [&] {
    for (size_t k; !stop && (k = next++) < files.size();) {
      try {
        results[k] = process_file(files[k], *tokenizer, residues == "foldseek");
      } catch (const std::exception& e) {
        results[k].error = e.what();
        if (strict) stop = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::ostringstream tokens_fasta, residues_fasta;
  std::vector<std::pair<std::string, std::string>> failed;
  size_t chains = 0, residues_total = 0, skipped_short = 0;
  for (size_t k = 0; k < files.size(); ++k) {
    if (!results[k].error.empty()) {
      const std::string message = results[k].error.find(files[k].string()) == std::string::npos
                                      ? files[k].string() + ": " + results[k].error
                                      : results[k].error;
      if (strict) fail(message, " (--strict)");
      warn("skipping ", message);
      failed.emplace_back(files[k].string(), message);
      continue;
    }
    skipped_short += results[k].skipped_short;
    for (const auto& chain : results[k].chains) {
      tokens_fasta << '>' << chain.name << '\n' << chain.tokens << '\n';
      residues_fasta << '>' << chain.name << '\n' << chain.residues << '\n';
      ++chains;
      residues_total += chain.residues.size();
    }
  }
  const std::string token_suffix = tokenizer_name == "foldseek_3di" ? ".3di.fasta" : ".tokens.fasta";
  write_file_atomic(prefix.string() + token_suffix, tokens_fasta.str());
  write_file_atomic(prefix.string() + ".aa.fasta", residues_fasta.str());

  const size_t read_ok = files.size() - failed.size();
  std::cout << "tokens: " << read_ok << " of " << files.size() << " files, " << chains << " chains, " << residues_total
            << " residues in " << seconds << " s (" << (seconds > 0 ? read_ok / seconds : 0.0)
            << " structures/s, " << workers << " thread" << (workers == 1 ? "" : "s") << ")\n";
  if (skipped_short) std::cout << "skipped " << skipped_short << " chains with <= 3 residues or only unknown residues\n";
  std::cout << "wrote " << prefix.string() << token_suffix << " and " << prefix.string() << ".aa.fasta\n";
  if (!failed.empty()) {
    std::cout << failed.size() << " file" << (failed.size() == 1 ? "" : "s") << " could not be read:\n";
    for (const auto& f : failed) std::cout << "  " << f.second << "\n";
  }
  return 0;
}

Register reg("tokens", "structure files -> structure-token FASTA (Foldseek 3Di) and residue FASTA", run);

}  // namespace
}  // namespace sapling::cli
