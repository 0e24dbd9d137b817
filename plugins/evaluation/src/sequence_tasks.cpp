// Sequence-only tasks (secondary-structure probe, masked-LM perplexity) and the plugin descriptor.
#include <algorithm>
#include <cmath>

#include "sapling/error.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/fasta.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"
#include "sapling/masking.hpp"
#include "sapling/internal/stats.hpp"
#include "support.hpp"
#include "tasks.hpp"

namespace sapling::evaluation {
namespace {

// ------------------------------------------------------------ secondary_structure

struct LabelledResidues {
  torch::Tensor features;  // [N, D]
  torch::Tensor q3, q8;    // [N] int64
  std::vector<int64_t> per_chain;  // scored residues of each chain that has any, in order
};

// Correct / scored residues per chain: the per-item scores of Q3 or Q8 for the bench's bootstrap.
stats::ItemScores chain_hits(torch::nn::Sequential& probe, const LabelledResidues& set, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  const auto hits = probe->forward(set.features).argmax(1).eq(y).to(torch::kFloat64).split_with_sizes(set.per_chain);
  stats::ItemScores items{"ratio", {{}, {}}};
  for (const auto& h : hits) {
    items.columns[0].push_back(h.sum().item<double>());
    items.columns[1].push_back(static_cast<double>(h.numel()));
  }
  return items;
}

// Stacks the scored residues of `chains` (features per chain in the same order).
LabelledResidues stack_scored(const std::vector<const SecondaryStructureChain*>& chains,
                              const std::vector<torch::Tensor>& features) {
  std::vector<torch::Tensor> f, q3, q8;
  std::vector<int64_t> per_chain;
  for (size_t k = 0; k < chains.size(); ++k) {
    const auto& c = *chains[k];
    std::vector<int64_t> keep, l3, l8;
    for (size_t i = 0; i < c.scored.size(); ++i)
      if (c.scored[i]) keep.push_back(static_cast<int64_t>(i)), l3.push_back(c.q3[i]), l8.push_back(c.q8[i]);
    if (keep.empty()) continue;
    per_chain.push_back(static_cast<int64_t>(keep.size()));
    f.push_back(features[k].index_select(0, torch::tensor(keep, torch::kInt64)));
    q3.push_back(torch::tensor(l3, torch::kInt64));
    q8.push_back(torch::tensor(l8, torch::kInt64));
  }
  if (f.empty()) fail("secondary_structure: no scored residues");
  return {torch::cat(f), torch::cat(q3), torch::cat(q8), per_chain};
}

class SecondaryStructure : public EvaluationTask {
 public:
  explicit SecondaryStructure(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    const auto train_all = read_secondary_structure_csv(data_path(options_.get_path("train_data"), "ss/cb513.csv.gz", "train_data"));
    const auto test_all = read_secondary_structure_csv(data_path(options_.get_path("test_data"), "ss/ts115.csv.gz", "test_data"));
    const uint64_t seed = static_cast<uint64_t>(options_.get_int("seed"));

    // Seeded order of the training file; the cap takes its first chains, the validation slice the first of those.
    const auto order = seeded_permutation(train_all.size(), seed);
    size_t n = train_all.size();
    if (options_.get_int("max_train_chains") > 0) n = std::min(n, static_cast<size_t>(options_.get_int("max_train_chains")));
    if (n < 2) fail("secondary_structure: need at least 2 training chains (one for validation)");
    const size_t n_valid = std::clamp<size_t>(
        static_cast<size_t>(std::ceil(options_.get_float("valid_fraction") * static_cast<double>(n))), 1, n - 1);
    std::vector<const SecondaryStructureChain*> valid, train, test;
    for (size_t k = 0; k < n; ++k) (k < n_valid ? valid : train).push_back(&train_all[order[k]]);
    size_t n_test = test_all.size();
    if (options_.get_int("max_test_chains") > 0) n_test = std::min(n_test, static_cast<size_t>(options_.get_int("max_test_chains")));
    for (size_t k = 0; k < n_test; ++k) test.push_back(&test_all[k]);

    auto features_of = [&](const std::vector<const SecondaryStructureChain*>& chains) {
      std::vector<std::string> seqs;
      for (const auto* c : chains) seqs.push_back(c->sequence);
      return stack_scored(chains, residue_features(model, seqs, options_.get_int("layer")));
    };
    auto tr = features_of(train), va = features_of(valid), te = features_of(test);
    auto [mean, scale] = column_mean_std(tr.features);
    scale = scale.clamp_min(1e-6);
    for (auto* set : {&tr, &va, &te}) set->features = (set->features - mean) / scale;

    const auto s = probe_settings(options_);
    double valid3 = 0, valid8 = 0;
    auto probe3 = train_probe(tr.features, tr.q3, va.features, va.q3, 3, s, valid3);
    auto probe8 = train_probe(tr.features, tr.q8, va.features, va.q8, 8, s, valid8);

    EvalResult result;
    result.add("Q3", accuracy(probe3, te.features, te.q3));
    result.add("Q8", accuracy(probe8, te.features, te.q8));
    result.extra["items"]["Q3"] = stats::to_json(chain_hits(probe3, te, te.q3));
    result.extra["items"]["Q8"] = stats::to_json(chain_hits(probe8, te, te.q8));
    result.add("valid_Q3", valid3);
    result.add("valid_Q8", valid8);
    result.add("train_chains", static_cast<double>(train.size()));
    result.add("valid_chains", static_cast<double>(valid.size()));
    result.add("test_chains", static_cast<double>(test.size()));
    result.add("train_residues", static_cast<double>(tr.q3.size(0)));
    result.add("test_residues", static_cast<double>(te.q3.size(0)));
    nlohmann::json names = nlohmann::json::array();
    for (const auto* c : valid) names.push_back(c->name);
    result.extra["valid"] = names;
    return result;
  }

 private:
  Options options_;
};

// ------------------------------------------------------------ mlm_perplexity

class MaskedPerplexity : public EvaluationTask {
 public:
  explicit MaskedPerplexity(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    torch::NoGradGuard no_grad;
    const auto path = data_path(options_.get_path("fasta"), "sequences/uniprot_go160k.fasta.gz", "fasta");
    // Only the first max_sequences records are parsed: the default file has 160k sequences
    // (and, further down, a few records with empty headers that the FASTA reader rejects).
    std::string text = read_maybe_gzipped(path);
    if (const int64_t wanted = options_.get_int("max_sequences"); wanted > 0) {
      int64_t headers = 0;
      for (size_t pos = 0; pos < text.size(); pos = text.find('\n', pos) + 1) {
        if (text[pos] == '>' && ++headers > wanted) {
          text.resize(pos);
          break;
        }
        if (text.find('\n', pos) == std::string::npos) break;
      }
    }
    const auto records = parse_fasta(text, path.string());
    const auto limit = static_cast<size_t>(max_residues(model));
    const auto& tokenizer = model.tokenizer();
    const auto device = model_device(model);
    MaskingOptions masking;
    masking.probability = options_.get_float("mask_probability");
    masking.replace_with_mask = options_.get_float("replace_with_mask");
    masking.replace_with_random = options_.get_float("replace_with_random");
    const uint64_t seed = static_cast<uint64_t>(options_.get_int("seed"));

    // Masks depend only on (seed, sequence index), not on batching.
    std::vector<std::vector<int64_t>> inputs, targets;
    int64_t cropped = 0;
    for (size_t s = 0; s < records.size(); ++s) {
      std::string seq = records[s].sequence;
      if (seq.size() > limit) seq.resize(limit), ++cropped;
      const auto batch = tokenizer.batch({seq});
      auto generator = make_generator(seed * 1000003ULL + s);
      const auto masked = mask_tokens(batch.ids, real_residue_mask(batch.ids, batch.mask, tokenizer), tokenizer, masking, generator);
      const auto ids = masked.ids[0].contiguous(), labels = masked.labels[0].contiguous();
      inputs.emplace_back(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
      targets.emplace_back(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
    }
    std::vector<size_t> order(inputs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return inputs[a].size() < inputs[b].size(); });

    const int64_t tokens_per_batch = options_.get_int("tokens_per_batch");
    double total_loss = 0;
    int64_t count = 0, correct = 0;
    ForwardRequest request;
    for (size_t begin = 0; begin < order.size();) {
      size_t end = begin + 1;
      while (end < order.size() && static_cast<int64_t>((end - begin + 1) * inputs[order[end]].size()) <= tokens_per_batch) ++end;
      std::vector<std::vector<int64_t>> ids, labels;
      for (size_t k = begin; k < end; ++k) ids.push_back(inputs[order[k]]), labels.push_back(targets[order[k]]);
      const auto batch = tokenizer.pad(ids);
      auto label_tensor = torch::full(batch.ids.sizes(), kIgnoreLabel, torch::kInt64);
      for (size_t r = 0; r < labels.size(); ++r)
        label_tensor[static_cast<int64_t>(r)].slice(0, 0, static_cast<int64_t>(labels[r].size())).copy_(
            torch::tensor(labels[r], torch::kInt64));
      const auto out = model.forward(batch.ids.to(device), batch.mask.to(device), request);
      const auto selected = label_tensor.ne(kIgnoreLabel);
      const auto logits = out.logits.to(torch::kFloat32).cpu().index({selected});
      const auto y = label_tensor.index({selected});
      if (y.numel() > 0) {
        total_loss += torch::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
        correct += logits.argmax(1).eq(y).sum().item<int64_t>();
        count += y.numel();
      }
      begin = end;
    }
    if (count == 0) fail("mlm_perplexity: no residue was masked (sequences too short or mask_probability 0)");
    EvalResult result;
    result.add("perplexity", std::exp(total_loss / static_cast<double>(count)));
    result.add("accuracy", static_cast<double>(correct) / static_cast<double>(count));
    result.add("cross_entropy", total_loss / static_cast<double>(count));
    result.add("masked_tokens", static_cast<double>(count));
    result.add("sequences", static_cast<double>(records.size()));
    result.add("cropped_sequences", static_cast<double>(cropped));
    return result;
  }

 private:
  Options options_;
};

}  // namespace

void register_sequence_tasks() {
  {
    OptionSchema schema;
    schema.add("train_data", OptionType::Path)
        .default_value(std::string())
        .doc("training CSV (input, dssp3, dssp8, disorder, cb513_mask); default <data>/ss/cb513.csv.gz");
    schema.add("test_data", OptionType::Path).default_value(std::string()).doc("test CSV; default <data>/ss/ts115.csv.gz");
    schema.add("max_train_chains", OptionType::Int).default_value(int64_t{0}).min(0).doc("cap on training+validation chains (0 = all 511)");
    schema.add("max_test_chains", OptionType::Int).default_value(int64_t{0}).min(0).doc("cap on test chains (0 = all 115; file order)");
    schema.add("valid_fraction", OptionType::Float).default_value(0.1).min(0, true).max(1, true).doc("validation slice of the training chains (early stopping)");
    schema.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the train/valid draw and the probe");
    schema.add("layer", OptionType::Int).default_value(int64_t{-1}).doc("frozen representation (-1 = final)");
    add_probe_options(schema);
    EvaluationTaskRegistry::instance().add(
        {"secondary_structure",
         "DSSP secondary structure probe on frozen per-residue features: Q3 and Q8 (two probes) on TS115. "
         "Protocol: train on CB513 (data/ss/cb513.csv.gz, permuted with `seed`; the first `valid_fraction` of the "
         "used chains is a validation slice for early stopping), test on TS115 (data/ss/ts115.csv.gz), which is "
         "never trained on. Features are standardised with training statistics. Only residues with disorder = 1 "
         "and cb513_mask = 1 are trained on and scored; Q3/Q8 = accuracy over all scored test residues. 3-state "
         "labels: H,G,I -> H; E,B -> E; others -> C.",
         schema, [](const Options& o) { return std::make_shared<SecondaryStructure>(o); }});
  }
  {
    OptionSchema schema;
    schema.add("fasta", OptionType::Path)
        .default_value(std::string())
        .doc("held-out sequences; default <data>/sequences/uniprot_go160k.fasta.gz, whose first 2,000 sequences "
             "were held out from the pretraining of models/esm2_t6_8M_uniprot");
    schema.add("max_sequences", OptionType::Int).default_value(int64_t{2000}).min(0).doc("use the first N sequences (0 = all)");
    schema.add("mask_probability", OptionType::Float).default_value(0.15).min(0, true).max(1).doc("chance a residue is masked");
    schema.add("replace_with_mask", OptionType::Float).default_value(1.0).min(0).max(1)
        .doc("fraction of the selected residues shown as <mask> (0.8 with replace_with_random = 0.1 is the "
             "80/10/10 corruption of BERT/ESM pretraining; the rest keep their residue but are still scored)");
    schema.add("replace_with_random", OptionType::Float).default_value(0.0).min(0).max(1)
        .doc("fraction of the selected residues replaced by a random standard residue");
    schema.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("mask seed (masks depend on seed and sequence index only)");
    schema.add("tokens_per_batch", OptionType::Int).default_value(int64_t{8192}).min(8).doc("padded tokens per forward pass");
    EvaluationTaskRegistry::instance().add(
        {"mlm_perplexity",
         "Masked-LM perplexity on held-out sequences (default: the first 2,000 of data/sequences/"
         "uniprot_go160k.fasta.gz, held out from models/esm2_t6_8M_uniprot's pretraining): each residue is selected "
         "with probability mask_probability and replaced by <mask> (core mask_tokens, seeded per sequence; "
         "replace_with_mask/replace_with_random give 80/10/10); perplexity = exp(mean cross-entropy over the "
         "full vocabulary at masked positions, pooled over all sequences); accuracy = argmax hits. Sequences over "
         "the model limit are cropped to their first residues.",
         schema, [](const Options& o) { return std::make_shared<MaskedPerplexity>(o); }});
  }
}

}  // namespace sapling::evaluation
