// `sapling prepare`: command-line options -> PrepareSettings (tokenizer and pGNN built from the registries) -> prepare_dataset().
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>

#include "command.hpp"
#include "component_options.hpp"
#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/log.hpp"
#include "sapling/options.hpp"
#include "sapling/internal/prepare.hpp"
#include "sapling/registry.hpp"
#include "sapling/structure_io.hpp"

namespace sapling::cli::prepare_command {  // one namespace per command: the CLI is a unity build
namespace {

namespace fs = std::filesystem;

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// "K/N" (0 <= K < N), or "env": a Slurm array task or a torchrun-style rank.
std::pair<int, int> parse_part(const std::string& text) {
  auto env_int = [](const char* name) -> std::optional<int> {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    try {
      return std::stoi(v);
    } catch (const std::exception&) {
      fail("--part env: ", name, "='", v, "' is not a number");
    }
  };
  int index = -1, count = -1;
  if (text == "env") {
    if (env_int("SLURM_ARRAY_TASK_COUNT")) {
      count = *env_int("SLURM_ARRAY_TASK_COUNT");
      index = env_int("SLURM_ARRAY_TASK_ID").value_or(-1) - env_int("SLURM_ARRAY_TASK_MIN").value_or(0);
    } else if (env_int("WORLD_SIZE")) {
      count = *env_int("WORLD_SIZE");
      index = env_int("RANK").value_or(-1);
    } else {
      fail("--part env: neither SLURM_ARRAY_TASK_COUNT (a Slurm job array) nor WORLD_SIZE (torchrun) is set");
    }
  } else {
    const size_t slash = text.find('/');
    try {
      size_t used = 0;
      if (slash == std::string::npos) throw std::invalid_argument("no /");
      index = std::stoi(text.substr(0, slash), &used);
      if (used != slash) throw std::invalid_argument("K");
      count = std::stoi(text.substr(slash + 1), &used);
      if (used != text.size() - slash - 1) throw std::invalid_argument("N");
    } catch (const std::exception&) {
      fail("--part: expected K/N (e.g. 0/8) or env, got '", text, "'");
    }
  }
  if (count < 1 || count > 99999 || index < 0 || index >= count)
    fail("--part ", text, ": worker ", index, " of ", count, " does not exist (K runs from 0 to N-1, N up to 99999)");
  return {index, count};
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
      ("device", po::value<std::string>()->default_value("cpu"),
       "cpu or cuda[:N]: where the --pgnn encoder runs (files are read and tokenised on CPU threads meanwhile)")
      ("embed-batch-residues", po::value<int64_t>()->default_value(8192),
       "residues per encoder call: chains are embedded together up to this many (more uses more memory)")
      ("part", po::value<std::string>(),
       "K/N: be worker K (0-based) of N; prepares the complexes of part K into OUT/part-K-of-N; "
       "'env' takes K and N from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE. Join them with --merge")
      ("shard", po::value<std::string>(), "the same as --part (a dataset's shards are its files; a worker writes a part)")
      ("merge", "join the finished OUT/part-K-of-N folders into one dataset in OUT (no data is copied)")
      ("update", "add the inputs to the dataset in OUT: files it holds unchanged are skipped, changed ones replaced, "
                 "new ones added; every complex keeps its split")
      ("restart", "discard the journal of an interrupted prepare in OUT instead of resuming it")
      ("plugin-path", po::value<std::vector<std::string>>(), "extra plugin folder (repeatable)");
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  if (!parse_args(args, desc, pos, vm,
                  "usage: sapling prepare INPUT... --out DIR [--min-length N] [--max-resolution A] [--max-missing F]\n"
                  "       [--chains A,B] [--strict] [--valid-fraction 0.1] [--reference-fraction 0] [--seed 0]\n"
                  "       [--split-by complex|entry] [--sequence observed|seqres]\n"
                  "       [--high-quality] [--shard-size N] [--tokenizer NAME [--tokenizer-option key=value]...]\n"
                  "       [--pgnn NAME --pgnn-weights FILE [--pgnn-option key=value]... | --allow-random-pgnn]\n"
                  "       [--device cpu|cuda[:N]] [--part K/N | --part env] [--update] [--restart]\n"
                  "       sapling prepare --merge --out DIR"))
    return 0;
  apply_common_options(vm);
  if (!vm.count("out")) fail("prepare: --out DIR is required");
  const fs::path out = vm["out"].as<std::string>();
  if (vm.count("merge")) {
    if (vm.count("input")) fail("prepare --merge takes no inputs: it joins the part folders in --out");
    std::cout << merge_dataset_parts(out);
    return 0;
  }
  if (!vm.count("input")) fail("prepare: no input files or folders given");
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

  if (has_max_resolution && max_resolution <= 0) fail("--max-resolution must be > 0, got ", max_resolution);
  PrepareSettings settings;
  settings.files = files;
  if (!vm.count("tokenizer") && vm.count("tokenizer-option")) fail("prepare: --tokenizer-option needs --tokenizer NAME");
  if (vm.count("tokenizer")) {
    load_plugins(vm.count("plugin-path") ? vm["plugin-path"].as<std::vector<std::string>>() : std::vector<std::string>{});
    const std::string name = vm["tokenizer"].as<std::string>();
    const auto& registration = Registry<StructureTokenizer>::instance().find(name);
    settings.tokenizer_options =
        vm.count("tokenizer-option") ? vm["tokenizer-option"].as<std::vector<std::string>>() : std::vector<std::string>{};
    settings.tokenizer = registration.factory(
        options_from_pairs(registration.schema, settings.tokenizer_options, "--tokenizer-option", "tokenizer"));
    settings.tokenizer_name = name;
  }
  // pGNN embeddings: built through the registry, evaluation mode, no autograd.
  std::shared_ptr<StructureEncoder> encoder;
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
    // --pgnn-weights is the encoder's `weights` option where it has one, so that
    // the encoder sees its file while it is built (and takes its shapes from it).
    if (vm.count("pgnn-weights") && registration.schema.find("weights")) {
      for (const auto& pair : pairs)
        if (pair.rfind("weights=", 0) == 0) fail("prepare: give the weights once, as --pgnn-weights or --pgnn-option weights=");
      pairs.push_back("weights=" + vm["pgnn-weights"].as<std::string>());
    }
    const Options options = options_from_pairs(registration.schema, pairs, "--pgnn-option", "pgnn");
    encoder = registration.factory(options);
    const bool has_weights = vm.count("pgnn-weights") || options.has("weights") || !encoder->needs_weights();
    if (!has_weights && !vm.count("allow-random-pgnn"))
      fail("prepare: --pgnn ", name, " needs trained weights (--pgnn-weights FILE): a randomly initialised ",
           "encoder gives embeddings that carry no learned structure signal and are useless as alignment targets; "
           "pass --allow-random-pgnn to store them anyway (tests only)");
    if (vm.count("pgnn-weights") && !registration.schema.find("weights"))
      encoder->load_weights(vm["pgnn-weights"].as<std::string>());
    encoder->eval();
    const torch::Device device = parse_device(vm["device"].as<std::string>());
    if (device.is_cuda() && !torch::cuda::is_available())
      fail("--device ", vm["device"].as<std::string>(), ": CUDA is not available in this build or machine");
    encoder->to(device);
    const nlohmann::json pgnn_info = {{"encoder", name},
                 {"weights", vm.count("pgnn-weights") ? vm["pgnn-weights"].as<std::string>()
                                                      : options.has("weights") ? options.get_path("weights").string() : ""},
                 {"options", pairs},
                 {"output_dim", encoder->output_dim()},
                 {"random_weights", !has_weights}};
    if (!has_weights) warn("prepare: --pgnn ", name, " with random weights (--allow-random-pgnn)");
    settings.pgnn = encoder;
    settings.pgnn_name = name;
    settings.pgnn_info_json = pgnn_info.dump();
  }
  if (!encoder && vm["device"].as<std::string>() != "cpu")
    warn("prepare: --device applies to the --pgnn encoder; without one everything runs on the CPU");
  settings.out = out;
  if (vm.count("part") && vm.count("shard")) fail("prepare: give --part K/N once (--shard is the same option)");
  if (vm.count("part") || vm.count("shard")) {
    const auto [index, count] = parse_part(vm.count("part") ? vm["part"].as<std::string>() : vm["shard"].as<std::string>());
    settings.part_index = index;
    settings.part_count = count;
    settings.out = out / dataset_part_name(index, count);
    if (vm.count("update")) fail("prepare: --update works on a whole dataset; update before splitting into parts, or merge first");
  }
  settings.update = vm.count("update") != 0;
  settings.restart = vm.count("restart") != 0;
  settings.embed_batch_residues = vm["embed-batch-residues"].as<int64_t>();
  settings.min_length = vm["min-length"].as<int64_t>();
  settings.max_resolution = has_max_resolution ? max_resolution : 0.0;
  settings.max_missing = max_missing;
  settings.chains = wanted_chains;
  settings.high_quality_only = high_quality_only;
  settings.valid_fraction = valid_fraction;
  settings.reference_fraction = reference_fraction;
  settings.seed = seed;
  settings.split_by = split_by;
  settings.full_sequence = sequence_mode == "seqres";
  settings.strict = strict;
  settings.shard_size = vm["shard-size"].as<int64_t>();
  // File readers: as many as the intra-op threads apply_common_options set (--threads, SAPLING_NUM_THREADS, every core).
  settings.threads = std::max(1, static_cast<int>(torch::get_num_threads()));
  settings.command = args;
  const PrepareReport report = prepare_dataset(settings);
  std::cout << report.summary;
  return 0;
}

Register reg("prepare", "PDB/mmCIF files or folders -> structure dataset (shards + index)", run);

}  // namespace
}  // namespace sapling::cli::prepare_command
