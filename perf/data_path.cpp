// sapling_perf_data_path: how fast the trainer's data path (memory-mapped chains, tokens and pGNN rows -> collated, masked micro-batches) delivers residues, with no model (issue #31).
//
// Runs what Trainer::micro_batch does for a prepared dataset, on one thread:
// the chain's arrays from the mapped shards, its structure tokens and pGNN
// rows, collate() (crop, tokenise, mask, targets, float32 rows) and, for
// packed batching, pack_micro_batch(). Also times opening the index.
#include <torch/torch.h>

#include <sys/resource.h>

#include <cstring>
#include <fstream>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/masking.hpp"
#include "sapling/model_loading.hpp"
#include "sapling/packing.hpp"
#include "sapling/plugin.hpp"
#include "sapling/internal/training_batches.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const char* kUsage =
    "usage: sapling_perf_data_path --dataset DIR --model DIR [--seconds 10] [--batching proteins|tokens|packed]\n"
    "       [--proteins-per-batch 8] [--tokens-per-batch 16384] [--max-length 2046] [--threads 1]\n"
    "       sapling_perf_data_path --make-rows OUT --dataset DIR [--embedding-dim 512] [--chains 3000]\n\n"
    "The first form times the trainer's data path on DIR's train split (its tokens and pGNN rows when it has\n"
    "them): index open time and memory, then micro-batches as the trainer builds them, for --seconds; prints\n"
    "residues/s. --model only supplies the sequence tokenizer. The second form writes a copy of DIR's first\n"
    "--chains chains with random float16 pGNN rows of --embedding-dim (a dataset of the published row width\n"
    "without running the encoder).\n";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Private (anonymous) resident memory now, from /proc/self/status: what a process really adds. File-backed
// pages of the mapped shards (the kernel may map them as 2 MB pages) are shared page cache, counted apart.
double rss_mb(const char* field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::strlen(field))) / 1024.0;
  return 0;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

int make_rows(const fs::path& from, const fs::path& out, int64_t dim, int64_t chains) {
  const sapling::StructureDataset source(from);
  sapling::DatasetWriterOptions options;
  options.tokenizer = source.tokenizer();
  options.token_symbols = source.token_symbols();
  options.tokenizer_options = source.tokenizer_options();
  options.token_mask_state = source.token_mask_state();
  sapling::StructureDatasetWriter writer(out, options);
  torch::manual_seed(0);
  const size_t n = std::min<size_t>(source.size(), static_cast<size_t>(chains));
  int64_t residues = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto chain = source.chain(i);
    residues += chain.length();
    writer.add(chain, source.metadata(i), source.has_tokens() ? source.tokens(i) : torch::Tensor(),
               torch::randn({chain.length(), dim}).to(torch::kFloat16));
  }
  writer.finish(R"({"note": "random pGNN rows from sapling_perf_data_path --make-rows"})");
  std::cout << "wrote " << out.string() << ": " << n << " chains, " << residues << " residues, rows of " << dim << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string dataset, model, make, batching = "proteins";
    double seconds = 10;
    int64_t proteins = 8, tokens = 16384, max_length = 2046, dim = 512, chains = 3000;
    int threads = 1;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) sapling::fail(a, " needs a value");
        return argv[++i];
      };
      if (a == "--dataset") dataset = next();
      else if (a == "--model") model = next();
      else if (a == "--make-rows") make = next();
      else if (a == "--seconds") seconds = std::stod(next());
      else if (a == "--batching") batching = next();
      else if (a == "--proteins-per-batch") proteins = std::stoll(next());
      else if (a == "--tokens-per-batch") tokens = std::stoll(next());
      else if (a == "--max-length") max_length = std::stoll(next());
      else if (a == "--embedding-dim") dim = std::stoll(next());
      else if (a == "--chains") chains = std::stoll(next());
      else if (a == "--threads") threads = std::stoi(next());
      else if (a == "-h" || a == "--help") {
        std::cout << kUsage;
        return 0;
      } else {
        sapling::fail("unknown argument ", a, "\n", kUsage);
      }
    }
    torch::set_num_threads(threads);
    if (dataset.empty()) sapling::fail("--dataset DIR is required\n", kUsage);
    if (!make.empty()) return make_rows(dataset, make, dim, chains);
    if (model.empty()) sapling::fail("--model DIR is required (its tokenizer)\n", kUsage);

    // Warm-up: the first tensor operations page in LibTorch's code, which is not the index's memory.
    (void)(torch::arange(1000).to(torch::kInt64).slice(0, 1, 9).contiguous().sum().item<int64_t>());
    const double anon_before = rss_mb("RssAnon:"), file_before = rss_mb("RssFile:");
    const auto open_start = Clock::now();
    const sapling::StructureDataset data(dataset);
    const double open_seconds = seconds_since(open_start);
    const double anon_after = rss_mb("RssAnon:"), file_after = rss_mb("RssFile:");
    const double index_mb = static_cast<double>(fs::file_size(fs::path(dataset) / "index.json")) / 1e6;
    std::cout << std::fixed << std::setprecision(3) << "index: " << data.size() << " chains, " << index_mb
              << " MB index.json, opened in " << open_seconds << " s, private memory +" << anon_after - anon_before
              << " MB (mapped shard pages +" << file_after - file_before << " MB, shared page cache)\n";

    sapling::PluginManager::instance().load_search_path({});  // the sequence encoders' plugins, for the tokenizer
    const auto encoder = sapling::load_sequence_encoder(model);
    const sapling::Tokenizer& tokenizer = encoder->tokenizer();
    const std::vector<size_t> train = data.indices("train");
    if (train.empty()) sapling::fail(dataset, ": no train chains");
    std::vector<int64_t> lengths;
    for (size_t i : train) lengths.push_back(std::min(data.metadata(i).length, max_length));
    sapling::BatchPlanSettings plan;
    plan.mode = sapling::parse_batching(batching);
    plan.proteins_per_batch = proteins;
    plan.tokens_per_batch = tokens;
    sapling::StructureTokenLayout layout;
    if (data.has_tokens()) {
      // The stored states in the default layout (StructureTokenizer::vocabulary()), as the trainer without a tokenizer.
      layout.vocabulary = sapling::StructureVocabulary::esm_like(static_cast<int64_t>(data.token_symbols().size()));
      layout.mask_state = data.token_mask_state();
    }
    const sapling::MaskingOptions masking;

    double read_s = 0, collate_s = 0, pack_s = 0;
    int64_t residues = 0, batches = 0;
    const auto start = Clock::now();
    for (int64_t epoch = 0; seconds_since(start) < seconds; ++epoch) {
      const auto epoch_plan = sapling::plan_epoch(lengths, plan, 0, epoch);
      for (size_t b = 0; b < epoch_plan.size() && seconds_since(start) < seconds; ++b) {
        auto t = Clock::now();
        std::vector<sapling::TrainingExample> examples;
        for (size_t p : epoch_plan[b]) {
          const size_t i = train[p];
          const auto chain = data.chain(i);
          sapling::TrainingExample ex;
          ex.sequence = chain.sequence;
          ex.observed = chain.observed;
          if (data.has_tokens()) ex.tokens = data.tokens(i);
          if (data.has_embeddings()) ex.embeddings = data.embeddings(i);
          examples.push_back(std::move(ex));
        }
        read_s += seconds_since(t);
        t = Clock::now();
        auto generator = sapling::make_generator(sapling::mix_seed(0, static_cast<uint64_t>(epoch), b));
        auto batch = sapling::collate(examples, tokenizer, max_length, masking, layout, generator);
        collate_s += seconds_since(t);
        if (plan.mode == sapling::Batching::Packed) {
          t = Clock::now();
          batch = sapling::pack_micro_batch(batch, tokens, tokenizer.pad_id());
          pack_s += seconds_since(t);
        }
        residues += batch.residues;
        ++batches;
      }
    }
    const double total = seconds_since(start);
    std::cout << "data path (" << batching << ", " << (batching == "proteins" ? std::to_string(proteins) + " proteins"
                                                                                : std::to_string(tokens) + " tokens")
              << " per micro-batch, crop " << max_length << ", rows " << data.embedding_dim() << "-d, "
              << (data.has_tokens() ? "tokens" : "no tokens") << ", " << threads << " torch thread(s)): " << batches
              << " micro-batches, " << residues << " residues in " << total << " s\n";
    std::cout << std::setprecision(0) << "residues/s: " << static_cast<double>(residues) / total
              << std::setprecision(3) << " (read " << read_s << " s, collate " << collate_s << " s, pack " << pack_s
              << " s); peak RSS " << peak_rss_mb() << " MB\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
