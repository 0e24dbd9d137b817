// `sapling prepare`: PDB/mmCIF files and folders -> structure dataset (filters, splits, optional structure tokens and pGNN embeddings).
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "command.hpp"
#include "component_options.hpp"
#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/log.hpp"
#include "sapling/options.hpp"
#include "sapling/progress.hpp"
#include "sapling/registry.hpp"
#include "sapling/structure_io.hpp"

namespace sapling::cli {
namespace {

namespace fs = std::filesystem;

struct FileResult {
  std::vector<ChainStructure> chains;
  std::string error;  // non-empty when the file could not be read
};

// Reads files[begin, end) on `threads` workers; results keep the file order.
std::vector<FileResult> read_batch(const std::vector<fs::path>& files, size_t begin, size_t end, int threads) {
  std::vector<FileResult> results(end - begin);
  std::atomic<size_t> next{begin};
  auto work = [&] {
    for (size_t i; (i = next++) < end;) {
      try {
        results[i - begin].chains = read_structure(files[i]);
      } catch (const std::exception& e) {
        results[i - begin].error = e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return results;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// "--chains A" keeps chain A and the TER-separated pieces named A_2, A_3, ...
bool chain_selected(const std::string& chain, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return true;
  const std::string base = chain.substr(0, chain.find('_'));
  return std::find(wanted.begin(), wanted.end(), chain) != wanted.end() ||
         std::find(wanted.begin(), wanted.end(), base) != wanted.end();
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()
      ("input", po::value<std::vector<std::string>>(), "PDB/mmCIF files or folders (searched recursively; .gz allowed)")
      ("out,o", po::value<std::string>(), "output dataset folder")
      ("min-length", po::value<int64_t>()->default_value(1), "drop chains with fewer residues")
      ("max-resolution", po::value<double>(), "drop chains above this resolution (A) or with unknown resolution")
      ("max-missing", po::value<double>()->default_value(1.0), "drop chains with a larger fraction of unobserved residues")
      ("chains", po::value<std::string>(), "keep only these author chains (comma-separated)")
      ("strict", "stop at the first file that cannot be read (exit status 1)")
      ("valid-fraction", po::value<double>()->default_value(0.1), "fraction of split groups put in the validation split")
      ("reference-fraction", po::value<double>()->default_value(0.0),
       "fraction of split groups held out for the reference model (splits reference_train / reference_valid, "
       "valid-fraction of them validating); the main splits never contain them")
      ("sequence", po::value<std::string>()->default_value("observed"),
       "observed: residues with coordinates only, one to one with 3Di and pGNN rows (published, Foldseek's view); "
       "seqres: the full sequence, residues without coordinates get no structure-token target")
      ("seed", po::value<uint64_t>()->default_value(0), "seed of the train/valid draw")
      ("split-by", po::value<std::string>()->default_value("complex"),
       "complex (entry up to the first '_' or '.', e.g. BM5 complex id) or entry")
      ("high-quality", "keep only X-ray chains at <= 2.0 A")
      ("shard-size", po::value<int64_t>()->default_value(1000), "chains per shard")
      ("tokenizer", po::value<std::string>(), "structure tokenizer (plugin) to store structure tokens")
      ("tokenizer-option", po::value<std::vector<std::string>>(), "--tokenizer option key=value (repeatable, e.g. weights=vq512.safetensors)")
      ("pgnn", po::value<std::string>(), "structure encoder (pGNN plugin, e.g. gearnet or precomputed) to store per-residue float16 embeddings")
      ("embed", po::value<std::string>(), "old name of --pgnn")
      ("pgnn-weights", po::value<std::string>(), "weights file of the --pgnn encoder (its save_weights format)")
      ("pgnn-option", po::value<std::vector<std::string>>(), "--pgnn encoder option key=value (repeatable, e.g. hidden_dims=[32,32])")
      ("embed-option", po::value<std::vector<std::string>>(), "old name of --pgnn-option")
      ("allow-random-pgnn", "permit --pgnn without weights (randomly initialised encoder; for tests only)")
      ("plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  if (!parse_args(args, desc, pos, vm,
                  "usage: sapling prepare INPUT... --out DIR [--min-length N] [--max-resolution A] [--max-missing F]\n"
                  "       [--chains A,B] [--strict] [--valid-fraction 0.1] [--reference-fraction 0] [--seed 0]\n"
                  "       [--split-by complex|entry] [--sequence observed|seqres]\n"
                  "       [--high-quality] [--shard-size N] [--tokenizer NAME [--tokenizer-option key=value]...]\n"
                  "       [--pgnn NAME --pgnn-weights FILE [--pgnn-option key=value]... | --allow-random-pgnn]"))
    return 0;
  apply_common_options(vm);
  if (!vm.count("input")) fail("prepare: no input files or folders given");
  if (!vm.count("out")) fail("prepare: --out DIR is required");
  const fs::path out = vm["out"].as<std::string>();
  const int64_t min_length = vm["min-length"].as<int64_t>();
  const double max_missing = vm["max-missing"].as<double>();
  const double valid_fraction = vm["valid-fraction"].as<double>();
  const double reference_fraction = vm["reference-fraction"].as<double>();
  const std::string sequence_mode = vm["sequence"].as<std::string>();
  if (sequence_mode != "observed" && sequence_mode != "seqres")
    fail("--sequence must be 'observed' or 'seqres', got '", sequence_mode, "'");
  const uint64_t seed = vm["seed"].as<uint64_t>();
  const bool strict = vm.count("strict") != 0;
  const bool high_quality_only = vm.count("high-quality") != 0;
  const std::vector<std::string> wanted_chains = vm.count("chains") ? split_list(vm["chains"].as<std::string>())
                                                                    : std::vector<std::string>{};
  if (max_missing < 0 || max_missing > 1) fail("--max-missing must be in [0, 1], got ", max_missing);
  if (valid_fraction < 0 || valid_fraction > 1) fail("--valid-fraction must be in [0, 1], got ", valid_fraction);
  if (reference_fraction < 0 || valid_fraction + reference_fraction > 1)
    fail("--reference-fraction must be in [0, 1 - valid-fraction] = [0, ", 1 - valid_fraction, "], got ",
         reference_fraction);
  const std::string split_by_name = vm["split-by"].as<std::string>();
  if (split_by_name != "complex" && split_by_name != "entry")
    fail("--split-by must be 'complex' or 'entry', got '", split_by_name, "'");
  const SplitBy split_by = split_by_name == "complex" ? SplitBy::Complex : SplitBy::Entry;
  const bool has_max_resolution = vm.count("max-resolution") != 0;
  const double max_resolution = has_max_resolution ? vm["max-resolution"].as<double>() : 0.0;

  std::vector<fs::path> inputs;
  for (const auto& s : vm["input"].as<std::vector<std::string>>()) inputs.emplace_back(s);
  const std::vector<fs::path> files = find_structure_files(inputs);
  if (files.empty()) fail("prepare: no .pdb/.ent/.cif/.mmcif(.gz) files found in the inputs");

  DatasetWriterOptions writer_options;
  writer_options.shard_size = vm["shard-size"].as<int64_t>();
  std::shared_ptr<StructureTokenizer> tokenizer;
  if (!vm.count("tokenizer") && vm.count("tokenizer-option")) fail("prepare: --tokenizer-option needs --tokenizer NAME");
  if (vm.count("tokenizer")) {
    load_plugins(vm.count("plugin-path") ? vm["plugin-path"].as<std::vector<std::string>>() : std::vector<std::string>{});
    const std::string name = vm["tokenizer"].as<std::string>();
    const auto& registration = Registry<StructureTokenizer>::instance().find(name);
    writer_options.tokenizer_options =
        vm.count("tokenizer-option") ? vm["tokenizer-option"].as<std::vector<std::string>>() : std::vector<std::string>{};
    tokenizer = registration.factory(
        options_from_pairs(registration.schema, writer_options.tokenizer_options, "--tokenizer-option", "tokenizer"));
    writer_options.tokenizer = name;
    for (int64_t s = 0; s < tokenizer->num_states(); ++s) writer_options.token_symbols.push_back(tokenizer->symbol(s));
    writer_options.token_mask_state = tokenizer->mask_state();
  }
  // pGNN embeddings: built through the registry, evaluation mode, no autograd.
  std::shared_ptr<StructureEncoder> encoder;
  nlohmann::json pgnn_info;
  if (vm.count("pgnn") && vm.count("embed")) fail("prepare: give --pgnn NAME (--embed is its old name), not both");
  const std::string pgnn_name =
      vm.count("pgnn") ? vm["pgnn"].as<std::string>() : vm.count("embed") ? vm["embed"].as<std::string>() : "";
  std::vector<std::string> pairs =
      vm.count("pgnn-option") ? vm["pgnn-option"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (vm.count("embed-option"))
    for (const auto& pair : vm["embed-option"].as<std::vector<std::string>>()) pairs.push_back(pair);
  if (pgnn_name.empty() && (vm.count("pgnn-weights") || !pairs.empty() || vm.count("allow-random-pgnn")))
    fail("prepare: --pgnn-weights, --pgnn-option and --allow-random-pgnn need --pgnn NAME");
  if (!pgnn_name.empty()) {
    load_plugins(vm.count("plugin-path") ? vm["plugin-path"].as<std::vector<std::string>>() : std::vector<std::string>{});
    const std::string& name = pgnn_name;
    const auto& registration = Registry<StructureEncoder>::instance().find(name);
    const Options options = options_from_pairs(registration.schema, pairs, "--pgnn-option", "pgnn");
    encoder = registration.factory(options);
    const bool has_weights = vm.count("pgnn-weights") || options.has("weights") || !encoder->needs_weights();
    if (!has_weights && !vm.count("allow-random-pgnn"))
      fail("prepare: --pgnn ", name, " needs trained weights (--pgnn-weights FILE): a randomly initialised ",
           "encoder gives embeddings that carry no learned structure signal and are useless as alignment targets; "
           "pass --allow-random-pgnn to store them anyway (tests only)");
    if (vm.count("pgnn-weights")) encoder->load_weights(vm["pgnn-weights"].as<std::string>());
    encoder->eval();
    pgnn_info = {{"encoder", name},
                 {"weights", vm.count("pgnn-weights") ? vm["pgnn-weights"].as<std::string>()
                                                      : options.has("weights") ? options.get_path("weights").string() : ""},
                 {"options", pairs},
                 {"output_dim", encoder->output_dim()},
                 {"random_weights", !has_weights}};
    if (!has_weights) warn("prepare: --pgnn ", name, " with random weights (--allow-random-pgnn)");
  }
  StructureDatasetWriter writer(out, writer_options);

  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (vm.count("threads")) threads = std::max(1, vm["threads"].as<int>());

  std::map<std::string, int64_t> dropped;  // reason -> chains
  std::map<std::string, int64_t> kept_by_split, high_quality_by_split;
  nlohmann::json failures = nlohmann::json::array();
  int64_t files_read = 0, chains_read = 0, residues_kept = 0, high_quality_kept = 0;
  const auto start = std::chrono::steady_clock::now();
  double embed_seconds = 0;
  int64_t residues_embedded = 0;
  ProgressBar progress(encoder ? "prepare+embed" : "prepare", static_cast<double>(files.size()), "files");
  const size_t batch = 256;
  for (size_t begin = 0; begin < files.size(); begin += batch) {
    const size_t end = std::min(files.size(), begin + batch);
    auto results = read_batch(files, begin, end, threads);
    for (size_t i = begin; i < end; ++i) {
      progress.advance(1);
      FileResult& result = results[i - begin];
      if (!result.error.empty()) {
        if (strict) fail(result.error, " (--strict: stopping at the first unreadable file)");
        warn("skipped ", result.error);
        failures.push_back({{"file", files[i].string()}, {"reason", result.error}});
        continue;
      }
      ++files_read;
      for (ChainStructure& chain : result.chains) {
        ++chains_read;
        const int64_t L = chain.length();
        const int64_t observed = chain.observed.sum().item<int64_t>();
        const bool high_quality = is_high_quality(chain.method, chain.resolution);
        std::string reason;
        if (!chain_selected(chain.chain, wanted_chains)) reason = "chain not requested";
        else if (L < min_length) reason = "shorter than --min-length";
        else if (observed == 0) reason = "no observed residue";
        else if (static_cast<double>(L - observed) > max_missing * static_cast<double>(L))
          reason = "more missing residues than --max-missing";
        else if (has_max_resolution && chain.resolution <= 0) reason = "resolution unknown (--max-resolution)";
        else if (has_max_resolution && chain.resolution > max_resolution) reason = "resolution above --max-resolution";
        else if (high_quality_only && !high_quality) reason = "not high quality (X-ray <= 2.0 A)";
        if (!reason.empty()) {
          ++dropped[reason];
          continue;
        }
        ChainMetadata metadata;
        metadata.group = split_group(chain.entry, split_by);
        metadata.split = assign_split(metadata.group, valid_fraction, seed, reference_fraction);
        // Filters above judge the deposited chain; what is stored is the training view of it.
        if (sequence_mode == "observed") chain = observed_residues(chain);
        metadata.source = files[i].string();
        metadata.high_quality = high_quality;
        torch::Tensor tokens;
        if (tokenizer) {
          try {
            const std::vector<int64_t> states = tokenizer->encode(chain);
            tokens = torch::tensor(states, torch::kInt64);
          } catch (const std::exception& e) {
            const std::string message = files[i].string() + " chain " + chain.chain + ": tokenizer: " + e.what();
            if (strict) fail(message);
            warn("skipped ", message);
            ++dropped["tokenizer failed"];
            continue;
          }
        }
        torch::Tensor embeddings;
        if (encoder) {
          const auto t0 = std::chrono::steady_clock::now();
          try {
            torch::NoGradGuard no_grad;
            embeddings = encoder->embed(chain);
            if (embeddings.dim() != 2 || embeddings.size(0) != chain.length() ||
                embeddings.size(1) != encoder->output_dim())
              fail("embedding has shape ", embeddings.sizes(), ", expected [", chain.length(), ", ",
                   encoder->output_dim(), "]");
          } catch (const std::exception& e) {
            const std::string message = files[i].string() + " chain " + chain.chain + ": pGNN: " + e.what();
            if (strict) fail(message);
            warn("skipped ", message);
            ++dropped["pGNN embedding failed"];
            continue;
          }
          embed_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          residues_embedded += chain.length();
        }
        ++kept_by_split[metadata.split];
        if (high_quality) ++high_quality_by_split[metadata.split];
        residues_kept += chain.length();
        high_quality_kept += high_quality ? 1 : 0;
        writer.add(chain, std::move(metadata), tokens, embeddings);
      }
    }
  }
  progress.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t kept = writer.chains_written();

  std::ostringstream summary;
  summary << std::fixed << std::setprecision(1);
  summary << "prepare: " << files.size() << " files: " << files_read << " read, " << failures.size()
          << " skipped (unreadable) in " << seconds << " s (" << static_cast<double>(files.size()) / seconds
          << " structures/s, " << threads << " threads)\n";
  summary << "chains: " << chains_read << " read, " << kept << " kept (" << residues_kept << " residues";
  for (const auto& [split, n] : kept_by_split) summary << ", " << split << " " << n;
  summary << ", high-quality " << high_quality_kept << "; " << sequence_mode << " sequences)\n";
  if (reference_fraction > 0)
    summary << "reference splits (the reference model trains on their high-quality chains): reference_train "
            << high_quality_by_split["reference_train"] << " high-quality of " << kept_by_split["reference_train"]
            << ", reference_valid " << high_quality_by_split["reference_valid"] << " of "
            << kept_by_split["reference_valid"] << "\n";
  if (encoder)
    summary << "pGNN " << pgnn_name << ": " << residues_embedded << " residues embedded (dim "
            << encoder->output_dim() << ", float16) in " << embed_seconds << " s\n";
  for (const auto& [reason, n] : dropped) summary << "dropped: " << reason << ": " << n << "\n";
  if (kept == 0) {
    std::cout << summary.str();
    fail("prepare: no chain passed the filters; nothing written to ", out.string());
  }
  nlohmann::json info{{"command", args},
                      {"files", files.size()},
                      {"files_read", files_read},
                      {"failures", failures},
                      {"chains_read", chains_read},
                      {"chains_kept", kept},
                      {"dropped", dropped},
                      {"split_by", split_by_name},
                      {"valid_fraction", valid_fraction},
                      {"reference_fraction", reference_fraction},
                      {"sequence", sequence_mode},
                      {"seed", seed}};
  if (encoder) info["pgnn"] = pgnn_info;
  writer.finish(info.dump());
  summary << "wrote " << out.string() << "\n";
  std::cout << summary.str();
  return 0;
}

Register reg("prepare", "PDB/mmCIF files or folders -> structure dataset (shards + index)", run);

}  // namespace
}  // namespace sapling::cli
