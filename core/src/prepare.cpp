// Structure files -> structure dataset: read and tokenise on a worker pool, filter, split, embed in batches, write journaled shards and the index.
#include "sapling/internal/prepare.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "dataset_index.hpp"
#include "prepare_tally.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"
#include "sapling/parallel.hpp"
#include "sapling/progress.hpp"
#include "sapling/structure_io.hpp"

namespace sapling {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One input file as prepare identifies it across runs (--update): its name
// without folders (PDB, AFDB and BM5 names are unique), size and modification time.
struct InputFile {
  fs::path path;
  int64_t index = 0;  // position in the run's full input list
  std::string key;
  int64_t size = 0, mtime = 0;
  json record() const { return json::array({key, size, mtime}); }
};

InputFile describe_input(const fs::path& path, int64_t index) {
  InputFile in{path, index, path.filename().string()};
  std::error_code ec;
  in.size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) in.size = -1;
  const auto time = fs::last_write_time(path, ec);
  in.mtime = ec ? -1 : std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  return in;
}

struct PreparedChain {
  ChainStructure chain;
  ChainMetadata metadata;
  torch::Tensor tokens, embeddings;
  std::string error;  // tokenizer or encoder failure: the chain is dropped (fatal with --strict)
  std::string error_reason;
};

struct FileResult {
  std::string error;  // non-empty when the file could not be read
  int64_t chains_read = 0;
  std::map<std::string, int64_t> dropped;
  std::vector<PreparedChain> kept;
};

// "--chains A" keeps chain A and the TER-separated pieces named A_2, A_3, ...
bool chain_selected(const std::string& chain, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return true;
  const std::string base = chain.substr(0, chain.find('_'));
  return std::find(wanted.begin(), wanted.end(), chain) != wanted.end() ||
         std::find(wanted.begin(), wanted.end(), base) != wanted.end();
}

// The filter a chain fails, or "".
std::string drop_reason(const ChainStructure& chain, const PrepareSettings& s) {
  const int64_t L = chain.length();
  const int64_t observed = chain.observed.sum().item<int64_t>();
  if (!chain_selected(chain.chain, s.chains)) return "chain not requested";
  if (L < s.min_length) return "shorter than --min-length";
  if (observed == 0) return "no observed residue";
  if (static_cast<double>(L - observed) > s.max_missing * static_cast<double>(L))
    return "more missing residues than --max-missing";
  if (s.max_resolution > 0 && chain.resolution <= 0) return "resolution unknown (--max-resolution)";
  if (s.max_resolution > 0 && chain.resolution > s.max_resolution) return "resolution above --max-resolution";
  if (s.high_quality_only && !is_high_quality(chain.method, chain.resolution)) return "not high quality (X-ray <= 2.0 A)";
  return "";
}

void tokenize(PreparedChain& p, const StructureTokenizer& tokenizer, const fs::path& file) {
  try {
    p.tokens = torch::tensor(tokenizer.encode(p.chain), torch::kInt64);
  } catch (const std::exception& e) {
    p.error = file.string() + " chain " + p.chain.chain + ": tokenizer: " + e.what();
    p.error_reason = "tokenizer failed";
  }
}

// Reads one file and prepares its chains: filters, split, stored view, and
// structure tokens when the tokenizer may run on this thread.
FileResult read_and_prepare(const InputFile& input, const PrepareSettings& s, bool tokenize_here) {
  FileResult result;
  std::vector<ChainStructure> chains;
  try {
    chains = read_structure(input.path);
  } catch (const std::exception& e) {
    result.error = e.what();
    return result;
  }
  for (ChainStructure& chain : chains) {
    ++result.chains_read;
    const std::string reason = drop_reason(chain, s);
    if (!reason.empty()) {
      ++result.dropped[reason];
      continue;
    }
    PreparedChain p;
    p.metadata.group = split_group(chain.entry, s.split_by);
    p.metadata.split = assign_split(p.metadata.group, s.valid_fraction, s.seed, s.reference_fraction);
    p.metadata.high_quality = is_high_quality(chain.method, chain.resolution);
    p.metadata.source = input.path.string();
    p.metadata.input_index = input.index;
    // Filters above judge the deposited chain; what is stored is the training view of it.
    p.chain = s.full_sequence ? std::move(chain) : observed_residues(chain);
    if (tokenize_here) tokenize(p, *s.tokenizer, input.path);
    result.kept.push_back(std::move(p));
  }
  return result;
}

// Runs the encoder over every kept chain of a batch of files, several chains
// per call up to the residue budget; a call that fails is retried chain by
// chain so that one bad chain costs only itself.
double embed_batch(std::vector<FileResult>& results, const PrepareSettings& s) {
  StructureEncoder& encoder = *s.pgnn;
  std::vector<PreparedChain*> todo;
  for (auto& r : results)
    for (auto& p : r.kept)
      if (p.error.empty()) todo.push_back(&p);
  const auto start = std::chrono::steady_clock::now();
  auto check = [&](PreparedChain& p, torch::Tensor rows) {
    if (rows.dim() != 2 || rows.size(0) != p.chain.length() || rows.size(1) != encoder.output_dim())
      fail("embedding has shape ", rows.sizes(), ", expected [", p.chain.length(), ", ", encoder.output_dim(), "]");
    p.embeddings = rows.to(torch::kCPU, torch::kFloat16);
  };
  torch::NoGradGuard no_grad;
  for (size_t begin = 0; begin < todo.size();) {
    size_t end = begin;
    int64_t residues = 0;
    while (end < todo.size() && (end == begin || residues + todo[end]->chain.length() <= s.embed_batch_residues))
      residues += todo[end++]->chain.length();
    std::vector<ChainStructure> chains;
    for (size_t k = begin; k < end; ++k) chains.push_back(todo[k]->chain);
    bool done = false;
    if (end - begin > 1) {
      try {
        auto rows = encoder.embed_batch(chains);
        if (rows.size() != chains.size()) fail("embed_batch gave ", rows.size(), " results for ", chains.size(), " chains");
        for (size_t k = begin; k < end; ++k) check(*todo[k], rows[k - begin]);
        done = true;
      } catch (const std::exception&) {
        // Retried one by one below, to name the chain that fails.
      }
    }
    for (size_t k = begin; !done && k < end; ++k) {
      try {
        check(*todo[k], encoder.embed(todo[k]->chain));
      } catch (const std::exception& e) {
        todo[k]->embeddings = torch::Tensor();
        todo[k]->error = todo[k]->metadata.source + " chain " + todo[k]->chain.chain + ": pGNN: " + e.what();
        todo[k]->error_reason = "pGNN embedding failed";
      }
    }
    begin = end;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// What a dataset's content depends on: two runs with equal settings give equal chains.
json content_settings(const PrepareSettings& s) {
  return json{{"min_length", s.min_length},
              {"max_resolution", s.max_resolution},
              {"max_missing", s.max_missing},
              {"chains", s.chains},
              {"high_quality_only", s.high_quality_only},
              {"valid_fraction", s.valid_fraction},
              {"reference_fraction", s.reference_fraction},
              {"seed", s.seed},
              {"split_by", s.split_by == SplitBy::Complex ? "complex" : "entry"},
              {"sequence", s.full_sequence ? "seqres" : "observed"},
              {"tokenizer", s.tokenizer ? s.tokenizer_name : ""},
              {"tokenizer_options", s.tokenizer ? s.tokenizer_options : std::vector<std::string>{}},
              {"pgnn", s.pgnn && !s.pgnn_info_json.empty() ? json::parse(s.pgnn_info_json) : json(nullptr)}};
}

// --update: the existing index's settings and inputs; selects the inputs to do.
struct UpdatePlan {
  json previous_prepare;
  std::vector<std::string> replaced;
  int64_t unchanged = 0, added = 0;
};

UpdatePlan plan_update(const PrepareSettings& s, std::vector<InputFile>& work) {
  const fs::path index_path = s.out / "index.json";
  if (!fs::exists(index_path))
    fail("prepare --update: ", s.out.string(), " holds no finished dataset (no index.json); run prepare without --update first");
  const json index = read_index_without_chains(index_path);
  UpdatePlan plan;
  plan.previous_prepare = index.value("prepare", json::object());
  if (!plan.previous_prepare.contains("settings") || !plan.previous_prepare.contains("inputs"))
    fail("prepare --update: ", index_path.string(),
         " was written by an older sapling (no record of its settings and inputs); prepare it again once");
  const std::string differ = differing_keys(plan.previous_prepare.at("settings"), content_settings(s));
  if (!differ.empty())
    fail("prepare --update: the options differ from those ", s.out.string(), " was prepared with (", differ,
         "); give the same options, or prepare a new dataset");
  std::map<std::string, std::pair<int64_t, int64_t>> known;
  for (const auto& r : plan.previous_prepare.at("inputs")) known[r.at(0)] = {r.at(1), r.at(2)};
  std::set<std::string> seen;
  std::vector<InputFile> todo;
  for (auto& in : work) {
    if (!seen.insert(in.key).second)
      fail("prepare --update: two inputs are named ", in.key, " (", in.path.string(),
           "): an update tells files apart by name");
    const auto it = known.find(in.key);
    if (it == known.end()) {
      ++plan.added;
      todo.push_back(in);
    } else if (it->second != std::make_pair(in.size, in.mtime)) {
      plan.replaced.push_back(in.key);
      todo.push_back(in);
    } else {
      ++plan.unchanged;
    }
  }
  work = std::move(todo);
  return plan;
}

// Part of each input for `part_count` workers: whole complexes, the largest
// first, each to the part with the fewest bytes so far (file size stands for
// the work). Every worker computes the same answer from the same inputs.
std::vector<int> assign_parts(const std::vector<InputFile>& inputs, int part_count) {
  std::vector<int> part(inputs.size(), 0);
  if (part_count == 1) return part;
  std::map<std::string, std::pair<int64_t, std::vector<size_t>>> groups;  // complex -> bytes, files
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto& g = groups[split_group(structure_entry_name(inputs[i].path), SplitBy::Complex)];
    g.first += std::max<int64_t>(inputs[i].size, 1);
    g.second.push_back(i);
  }
  std::vector<const std::pair<const std::string, std::pair<int64_t, std::vector<size_t>>>*> order;
  for (const auto& g : groups) order.push_back(&g);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->second.first > b->second.first; });
  std::vector<int64_t> load(static_cast<size_t>(part_count), 0);
  for (const auto* g : order) {
    const size_t lightest = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[lightest] += g->second.first;
    for (size_t i : g->second.second) part[i] = static_cast<int>(lightest);
  }
  return part;
}

uint64_t digest_of(const std::vector<InputFile>& work) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& in : work)
    for (unsigned char c : in.key + "\t" + std::to_string(in.size) + "\n") h = (h ^ c) * 1099511628211ull;
  return h;
}

// Test hook: SAPLING_PREPARE_KILL_AFTER_SHARDS=K ends the process right after
// the K-th journaled shard, as a kill would (tests of resuming).
void maybe_simulate_kill(int64_t shards_written) {
  static const char* env = std::getenv("SAPLING_PREPARE_KILL_AFTER_SHARDS");
  if (env && shards_written >= std::atoll(env)) {
    std::cerr << "SAPLING_PREPARE_KILL_AFTER_SHARDS: stopping after shard " << shards_written << "\n";
    std::_Exit(137);
  }
}

}  // namespace

std::string dataset_part_name(int part_index, int part_count) {
  std::ostringstream os;
  os << "part-" << std::setw(5) << std::setfill('0') << part_index << "-of-" << std::setw(5) << part_count;
  return os.str();
}

PrepareReport prepare_dataset(const PrepareSettings& settings) {
  const PrepareSettings& s = settings;
  const int threads = std::max(1, s.threads);
  if (s.part_count < 1 || s.part_index < 0 || s.part_index >= s.part_count)
    fail("prepare: part ", s.part_index, " of ", s.part_count, " does not exist (parts are 0 to N-1)");
  if (s.embed_batch_residues < 1) fail("prepare: the encoder's residue budget must be at least 1");

  // The work: this part's files (whole complexes), then, for an update, the new and changed ones.
  std::vector<InputFile> work;
  std::vector<InputFile> all;
  for (size_t i = 0; i < s.files.size(); ++i) all.push_back(describe_input(s.files[i], static_cast<int64_t>(i)));
  const std::vector<int> part_of = assign_parts(all, s.part_count);
  for (size_t i = 0; i < all.size(); ++i)
    if (part_of[i] == s.part_index) work.push_back(all[i]);
  const size_t files_in_part = work.size();
  UpdatePlan update;
  if (s.update) update = plan_update(s, work);
  const json settings_json = content_settings(s);

  DatasetWriterOptions writer_options;
  writer_options.shard_size = s.shard_size;
  writer_options.flush_when_full = false;  // shards end between files: see flush_if_full below
  writer_options.update = s.update;
  writer_options.replace_sources = update.replaced;
  if (s.tokenizer) {
    writer_options.tokenizer = s.tokenizer_name;
    writer_options.tokenizer_options = s.tokenizer_options;
    for (int64_t k = 0; k < s.tokenizer->num_states(); ++k) writer_options.token_symbols.push_back(s.tokenizer->symbol(k));
    writer_options.token_mask_state = s.tokenizer->mask_state();
  }
  std::ostringstream work_digest;
  work_digest << std::hex << digest_of(work);
  writer_options.journal_settings =
      json{{"content", settings_json}, {"part", std::to_string(s.part_index) + "/" + std::to_string(s.part_count)},
           {"update", s.update}, {"work", work_digest.str()}, {"files", work.size()}}
          .dump();
  if (s.restart) {
    std::error_code ec;
    fs::remove(s.out / "prepare.journal", ec);
  }
  StructureDatasetWriter writer(s.out, writer_options);

  // Tallies: of the journaled shards of an interrupted run, and of this run.
  PrepareTally total, delta;
  size_t start_at = 0;
  for (const auto& text : writer.resumed_progress()) {
    const json progress = json::parse(text);
    total.add(PrepareTally::from_json(progress.at("tally")));
    start_at = progress.at("next").get<size_t>();
  }
  std::ostringstream resumed_line;
  if (!writer.resumed_progress().empty())
    resumed_line << "resumed an interrupted run: " << writer.resumed_progress().size() << " shards and " << start_at
                 << " of " << work.size() << " files were done\n";
  if (!resumed_line.str().empty()) info(resumed_line.str().substr(0, resumed_line.str().size() - 1));

  const bool tokenize_in_workers = s.tokenizer && s.tokenizer->thread_safe();
  const auto start = std::chrono::steady_clock::now();
  ProgressBar progress(s.pgnn ? "prepare+embed" : "prepare", static_cast<double>(work.size() - start_at), "files");
  auto read_batch = [&](size_t begin, size_t end) {
    std::vector<FileResult> results(end - begin);
    parallel_for(begin, end, threads,
                 [&](size_t i) { results[i - begin] = read_and_prepare(work[i], s, tokenize_in_workers); });
    return results;
  };
  const size_t batch = s.pgnn ? static_cast<size_t>(std::max(16, 4 * threads)) * 16 : 256;
  std::future<std::vector<FileResult>> next;
  if (start_at < work.size())
    next = std::async(std::launch::async, read_batch, start_at, std::min(work.size(), start_at + batch));
  int64_t shards_this_run = 0;
  for (size_t begin = start_at; begin < work.size(); begin += batch) {
    const size_t end = std::min(work.size(), begin + batch);
    auto results = next.get();
    // Read the next files while this batch is tokenised (serial tokenizers), embedded and written.
    if (end < work.size()) next = std::async(std::launch::async, read_batch, end, std::min(work.size(), end + batch));
    if (s.tokenizer && !tokenize_in_workers)
      for (size_t i = begin; i < end; ++i)
        for (auto& p : results[i - begin].kept) tokenize(p, *s.tokenizer, work[i].path);
    if (s.pgnn) {
      int64_t residues = 0;
      for (auto& r : results)
        for (auto& p : r.kept)
          if (p.error.empty()) residues += p.chain.length();
      delta.embed_seconds += embed_batch(results, s);
      delta.residues_embedded += residues;
    }
    for (size_t i = begin; i < end; ++i) {
      progress.advance(1);
      FileResult& result = results[i - begin];
      delta.files += 1;
      delta.inputs.push_back(work[i].record());
      if (!result.error.empty()) {
        if (s.strict) fail(result.error, " (--strict: stopping at the first unreadable file)");
        warn("skipped ", result.error);
        delta.failures.push_back({{"file", work[i].path.string()}, {"reason", result.error}});
        continue;
      }
      ++delta.files_read;
      delta.chains_read += result.chains_read;
      for (const auto& [reason, n] : result.dropped) delta.dropped[reason] += n;
      for (PreparedChain& p : result.kept) {
        if (!p.error.empty()) {
          if (s.strict) fail(p.error);
          warn("skipped ", p.error);
          ++delta.dropped[p.error_reason];
          continue;
        }
        delta.count_kept(p.metadata.split, p.metadata.high_quality, p.chain.length());
        writer.add(p.chain, std::move(p.metadata), p.tokens, p.embeddings);
      }
      // A shard ends only between files, so the journal can say "files before i + 1 are done".
      if (writer.flush_if_full(json{{"next", i + 1}, {"tally", delta.to_json()}}.dump())) {
        total.add(delta);
        delta = PrepareTally();
        maybe_simulate_kill(++shards_this_run);
      }
    }
  }
  progress.finish();
  total.add(delta);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t kept = writer.chains_written();
  const size_t done_now = work.size() - start_at;

  std::ostringstream summary;
  summary << std::fixed << std::setprecision(1);
  summary << resumed_line.str();
  if (s.part_count > 1)
    summary << "part " << s.part_index << " of " << s.part_count << ": " << files_in_part << " of " << s.files.size()
            << " input files\n";
  if (s.update)
    summary << "update: " << update.unchanged << " files already in the dataset, " << update.added << " new, "
            << update.replaced.size() << " changed (their chains replaced)\n";
  summary << "prepare: " << total.files << " files: " << total.files_read << " read, " << total.failures.size()
          << " skipped (unreadable); this run " << done_now << " files in " << seconds << " s ("
          << static_cast<double>(done_now) / std::max(seconds, 1e-9) << " structures/s, " << threads << " threads)\n";
  summary << "chains: " << total.chains_read << " read, " << total.chains_kept() << " kept (" << total.residues_kept
          << " residues";
  for (const auto& [split, n] : total.kept_by_split) summary << ", " << split << " " << n;
  summary << ", high-quality " << total.high_quality_kept << "; " << (s.full_sequence ? "seqres" : "observed")
          << " sequences)\n";
  if (s.reference_fraction > 0)
    summary << "reference splits (the reference model trains on their high-quality chains): reference_train "
            << total.high_quality_by_split["reference_train"] << " high-quality of "
            << total.kept_by_split["reference_train"] << ", reference_valid "
            << total.high_quality_by_split["reference_valid"] << " of " << total.kept_by_split["reference_valid"] << "\n";
  if (s.pgnn)
    summary << "pGNN " << s.pgnn_name << ": " << total.residues_embedded << " residues embedded (dim "
            << s.pgnn->output_dim() << ", float16) in " << total.embed_seconds << " s\n";
  for (const auto& [reason, n] : total.dropped) summary << "dropped: " << reason << ": " << n << "\n";
  if (s.update && work.empty()) {
    summary << "nothing new: " << s.out.string() << " is unchanged\n";
    PrepareReport report;
    report.chains_kept = kept;
    report.files_skipped_unchanged = update.unchanged;
    report.summary = summary.str();
    std::error_code ec;
    fs::remove(s.out / "prepare.journal", ec);
    return report;
  }
  if (kept == 0 && s.part_count == 1) {
    std::cout << summary.str();  // what was read and dropped, before the error
    fail("prepare: no chain passed the filters; nothing written to ", s.out.string());
  }
  // An empty part is still a finished part: the merge needs every one of them.
  if (kept == 0) warn("prepare: part ", s.part_index, " of ", s.part_count, " has no chain that passed the filters");

  // The index's record of how the dataset was made: for --update, the earlier runs' counts and inputs too.
  PrepareTally recorded = total;
  json inputs = json::array();
  if (s.update) {
    recorded.add(PrepareTally::from_json(update.previous_prepare));
    const std::set<std::string> redone(update.replaced.begin(), update.replaced.end());
    for (const auto& r : update.previous_prepare.at("inputs"))
      if (!redone.count(r.at(0).get<std::string>())) inputs.push_back(r);
  }
  for (const auto& r : total.inputs) inputs.push_back(r);
  json info = recorded.to_json();
  info["command"] = s.command;
  info["settings"] = settings_json;
  info["inputs"] = inputs;
  info["split_by"] = settings_json.at("split_by");
  info["valid_fraction"] = s.valid_fraction;
  info["reference_fraction"] = s.reference_fraction;
  info["sequence"] = settings_json.at("sequence");
  info["seed"] = s.seed;
  info["chains_kept"] = kept;
  {
    // Every dataset records which part of its inputs it is (0 of 1: all of them), for --merge.
    std::ostringstream all_digest;
    all_digest << std::hex << digest_of(all);
    info["part"] = {{"index", s.part_index}, {"count", s.part_count}, {"files_total", s.files.size()},
                    {"inputs_digest", all_digest.str()}};
  }
  if (s.pgnn && !s.pgnn_info_json.empty()) info["pgnn"] = json::parse(s.pgnn_info_json);
  if (s.update) info["updates"] = update.previous_prepare.value("updates", 0) + 1;
  writer.finish(info.dump());
  summary << "wrote " << s.out.string() << " (" << kept << " chains)\n";
  PrepareReport report;
  report.chains_kept = kept;
  report.files_skipped_unchanged = update.unchanged;
  for (const auto& f : total.failures)
    report.failures.push_back(f.at("file").get<std::string>() + ": " + f.at("reason").get<std::string>());
  report.summary = summary.str();
  return report;
}

}  // namespace sapling
