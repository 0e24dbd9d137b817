// Structure files -> structure dataset: read on a worker pool, filter, split, tokenise, embed, write shards and index.
#include "sapling/prepare.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <map>
#include <iostream>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/log.hpp"
#include "sapling/parallel.hpp"
#include "sapling/progress.hpp"
#include "sapling/structure_io.hpp"

namespace sapling {

namespace {

namespace fs = std::filesystem;

struct FileResult {
  std::vector<ChainStructure> chains;
  std::string error;  // non-empty when the file could not be read
};

// Reads files[begin, end) on `threads` workers; results keep the file order.
std::vector<FileResult> read_batch(const std::vector<fs::path>& files, size_t begin, size_t end, int threads) {
  std::vector<FileResult> results(end - begin);
  parallel_for(begin, end, threads, [&](size_t i) {
    try {
      results[i - begin].chains = read_structure(files[i]);
    } catch (const std::exception& e) {
      results[i - begin].error = e.what();
    }
  });
  return results;
}

// "--chains A" keeps chain A and the TER-separated pieces named A_2, A_3, ...
bool chain_selected(const std::string& chain, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return true;
  const std::string base = chain.substr(0, chain.find('_'));
  return std::find(wanted.begin(), wanted.end(), chain) != wanted.end() ||
         std::find(wanted.begin(), wanted.end(), base) != wanted.end();
}

}  // namespace

PrepareReport prepare_dataset(const PrepareSettings& settings) {
  const auto& files = settings.files;
  const auto& out = settings.out;
  const auto& tokenizer = settings.tokenizer;
  const auto& encoder = settings.pgnn;
  const bool strict = settings.strict;
  const int threads = std::max(1, settings.threads);
  const auto& wanted_chains = settings.chains;
  const int64_t min_length = settings.min_length;
  const double max_missing = settings.max_missing;
  const bool has_max_resolution = settings.max_resolution > 0;
  const double max_resolution = settings.max_resolution;
  const bool high_quality_only = settings.high_quality_only;
  const SplitBy split_by = settings.split_by;
  const double valid_fraction = settings.valid_fraction, reference_fraction = settings.reference_fraction;
  const uint64_t seed = settings.seed;
  const std::string sequence_mode = settings.full_sequence ? "seqres" : "observed";
  const std::string& pgnn_name = settings.pgnn_name;
  DatasetWriterOptions writer_options;
  writer_options.shard_size = settings.shard_size;
  if (tokenizer) {
    writer_options.tokenizer = settings.tokenizer_name;
    writer_options.tokenizer_options = settings.tokenizer_options;
    for (int64_t s = 0; s < tokenizer->num_states(); ++s) writer_options.token_symbols.push_back(tokenizer->symbol(s));
    writer_options.token_mask_state = tokenizer->mask_state();
  }
  StructureDatasetWriter writer(out, writer_options);


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
    std::cout << summary.str();  // what was read and dropped, before the error
    fail("prepare: no chain passed the filters; nothing written to ", out.string());
  }
  nlohmann::json info{{"command", settings.command},
                      {"files", files.size()},
                      {"files_read", files_read},
                      {"failures", failures},
                      {"chains_read", chains_read},
                      {"chains_kept", kept},
                      {"dropped", dropped},
                      {"split_by", settings.split_by == SplitBy::Complex ? "complex" : "entry"},
                      {"valid_fraction", settings.valid_fraction},
                      {"reference_fraction", settings.reference_fraction},
                      {"sequence", sequence_mode},
                      {"seed", settings.seed}};
  if (encoder && !settings.pgnn_info_json.empty()) info["pgnn"] = nlohmann::json::parse(settings.pgnn_info_json);
  writer.finish(info.dump());
  summary << "wrote " << out.string() << "\n";
  PrepareReport report;
  report.chains_kept = kept;
  for (const auto& f : failures) report.failures.push_back(f.at("file").get<std::string>() + ": " + f.at("reason").get<std::string>());
  report.summary = summary.str();
  return report;
}

}  // namespace sapling
