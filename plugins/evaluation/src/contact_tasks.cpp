// Contact-prediction tasks: the ESM unsupervised attention protocol and a supervised probe on frozen last-layer features.
#include <cmath>
#include <map>
#include <tuple>

#include "sapling/error.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/log.hpp"
#include "sapling/masking.hpp"
#include "sapling/internal/stats.hpp"
#include "support.hpp"
#include "tasks.hpp"

namespace sapling::evaluation {
namespace {

// ------------------------------------------------------------ shared: data, split, scoring

const char* kSplitDoc =
    "Split: the files are sorted by name, permuted with `seed` (Fisher-Yates on mt19937_64), the first "
    "`train_chains` are the training set and the rest (at most `max_test_chains`) the test set, so train and "
    "test never share a file. Each file contributes its first protein chain; chains longer than the model's "
    "limit are skipped with a warning. Contacts: CB-CB < `contact_threshold` A with CB imputed from N, CA, C "
    "(ideal geometry) for every residue; residues without backbone are ignored. Precision of the top L, L/2, "
    "L/5 pairs (L = residues) per separation range short 6-11, medium 12-23, long >= 24, averaged over test "
    "proteins; `long_random` is the fraction of long-range pairs in contact (the precision of a random ranking).";

void add_split_options(OptionSchema& schema, int64_t train_default) {
  schema.add("structures", OptionType::Path)
      .default_value(std::string())
      .doc("folder of structure files (its *.chain.pdb[.gz] when present) or a text file listing one per line; "
           "default: <data>/structures/psicov (the 100 PSICOV targets; <data> = $SAPLING_DATA_DIR/data, filled by `sapling data fetch psicov`)");
  schema.add("train_chains", OptionType::Int).default_value(train_default).min(1).doc("training proteins");
  schema.add("max_test_chains", OptionType::Int).default_value(int64_t{0}).min(0).doc("cap on test proteins (0 = all the rest)");
  schema.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the train/test draw (and of the probe)");
  schema.add("contact_threshold", OptionType::Float).default_value(8.0).min(0, true).doc("CB-CB contact distance, A");
  schema.add("example_map", OptionType::Bool)
      .default_value(true)
      .doc("store the first test protein's predicted and true contact maps in the JSON extra");
}

struct ContactSplit {
  std::vector<ChainStructure> train, test;
};

ContactSplit load_split(const Options& options, SequenceEncoder& model) {
  const auto source = data_path(options.get_path("structures"), "structures/psicov", "structures");
  const auto files = contact_structure_files(source);
  const auto n_train = static_cast<size_t>(options.get_int("train_chains"));
  if (files.size() <= n_train)
    fail("option 'train_chains' = ", n_train, ": ", source.string(), " has only ", files.size(),
         " structure files, none would be left for testing");
  const auto order = seeded_permutation(files.size(), static_cast<uint64_t>(options.get_int("seed")));
  size_t n_test = files.size() - n_train;
  if (options.get_int("max_test_chains") > 0) n_test = std::min(n_test, static_cast<size_t>(options.get_int("max_test_chains")));
  ContactSplit split;
  for (size_t k = 0; k < n_train + n_test; ++k) {
    auto chain = read_first_chain(files[order[k]]);
    if (chain.length() > max_residues(model)) {
      warn(files[order[k]].string(), ": ", chain.length(), " residues exceed the model's limit of ", max_residues(model),
           "; skipped");
      continue;
    }
    (k < n_train ? split.train : split.test).push_back(std::move(chain));
  }
  if (split.train.empty() || split.test.empty()) fail(source.string(), ": no usable training or test chains");
  return split;
}

std::string chain_name(const ChainStructure& c) { return c.entry + (c.chain.empty() ? "" : "_" + c.chain); }

// Pairs i < j at separation >= min_separation with both residues valid: [P] row and column indices.
std::pair<torch::Tensor, torch::Tensor> training_pairs(const ContactTruth& truth, int64_t min_separation) {
  const auto pairs = range_pairs(truth.valid.size(0), truth.valid, {"train", min_separation, -1}).nonzero();
  return {pairs.select(1, 0), pairs.select(1, 1)};
}

nlohmann::json rounded_matrix(const torch::Tensor& m) {
  const auto t = m.to(torch::kFloat64).cpu().contiguous();
  const auto a = t.accessor<double, 2>();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < a.size(0); ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t j = 0; j < a.size(1); ++j) row.push_back(std::round(a[i][j] * 1e4) / 1e4);
    rows.push_back(std::move(row));
  }
  return rows;
}

// Scores every test protein with `predict` ([L, L] probabilities) and fills the result.
template <typename Predict>
void score_test_set(const ContactSplit& split, const Options& options, Predict&& predict, EvalResult& result) {
  MeanAccumulator mean;
  std::map<std::string, stats::ItemScores> items;  // per-protein precision of each metric, for the bench's bootstrap
  nlohmann::json per_protein = nlohmann::json::array();
  const double threshold = options.get_float("contact_threshold");
  for (size_t k = 0; k < split.test.size(); ++k) {
    const auto& chain = split.test[k];
    const auto truth = contact_truth(chain, threshold);
    const auto scores = predict(chain);
    auto values = contact_precisions(scores, truth);
    const auto long_pairs = range_pairs(chain.length(), truth.valid, contact_ranges()[2]);
    const double random = long_pairs.any().item<bool>()
                              ? truth.contacts.masked_select(long_pairs).to(torch::kFloat64).mean().item<double>()
                              : std::nan("");
    values.emplace_back("long_random", random);
    mean.add(values);
    for (const auto& [name, value] : values) {
      auto& column = items.try_emplace(name, stats::ItemScores{"mean", {{}}}).first->second.columns[0];
      column.push_back(value);
    }
    nlohmann::json entry{{"name", chain_name(chain)}, {"length", chain.length()}};
    for (const auto& [name, value] : values) entry[name] = std::isnan(value) ? nlohmann::json() : nlohmann::json(value);
    per_protein.push_back(std::move(entry));
    if (k == 0 && options.get_bool("example_map"))
      result.extra["example"] = {{"name", chain_name(chain)},
                                 {"sequence", chain.sequence},
                                 {"predicted", rounded_matrix(scores)},
                                 {"true", rounded_matrix(truth.contacts)}};
  }
  for (const auto& [name, value] : mean.means()) {
    result.add(name, value);
    result.extra["items"][name] = stats::to_json(items.at(name));
  }
  result.add("train_chains", static_cast<double>(split.train.size()));
  result.add("test_chains", static_cast<double>(split.test.size()));
  result.extra["per_protein"] = std::move(per_protein);
  nlohmann::json train_names = nlohmann::json::array(), test_names = nlohmann::json::array();
  for (const auto& c : split.train) train_names.push_back(chain_name(c));
  for (const auto& c : split.test) test_names.push_back(chain_name(c));
  result.extra["train"] = train_names;
  result.extra["test"] = test_names;
}

// ------------------------------------------------------------ contact_unsupervised

class UnsupervisedContacts : public EvaluationTask {
 public:
  explicit UnsupervisedContacts(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    const auto split = load_split(options_, model);
    const double threshold = options_.get_float("contact_threshold");
    const int64_t min_sep = options_.get_int("min_separation");
    std::vector<torch::Tensor> xs, ys;
    for (const auto& chain : split.train) {
      const auto features = attention_features(model, chain.sequence);
      const auto truth = contact_truth(chain, threshold);
      const auto [i, j] = training_pairs(truth, min_sep);
      xs.push_back(features.index({i, j}));
      ys.push_back(truth.contacts.index({i, j}));
    }
    L1LogisticOptions fit_options;
    fit_options.c = options_.get_float("l1_c");
    fit_options.max_iterations = options_.get_int("max_iterations");
    const auto x = torch::cat(xs, 0), y = torch::cat(ys, 0);
    const auto fitted = fit_l1_logistic(x, y, fit_options);
    if (!fitted.converged)
      warn("contact_unsupervised: the L1 logistic fit stopped after ", fitted.iterations,
           " iterations before reaching its tolerance (raise max_iterations)");
    info("contact_unsupervised: fitted on ", x.size(0), " pairs of ", split.train.size(), " proteins (",
         y.to(torch::kFloat64).mean().item<double>() * 100, "% contacts) in ", fitted.iterations,
         " iterations; optimality (KKT) violation ", fitted.kkt_violation, " x lambda");

    EvalResult result;
    score_test_set(
        split, options_,
        [&](const ChainStructure& chain) {
          const auto features = attention_features(model, chain.sequence);
          const int64_t L = features.size(0);
          return fitted.predict(features.reshape({L * L, -1})).reshape({L, L});
        },
        result);
    result.add("nonzero_weights", fitted.weight.ne(0).sum().item<double>());
    result.add("fit_iterations", static_cast<double>(fitted.iterations));
    std::vector<double> weight(fitted.weight.data_ptr<double>(), fitted.weight.data_ptr<double>() + fitted.weight.numel());
    result.extra["regression"] = {{"weight", weight}, {"bias", fitted.bias}, {"C", fit_options.c},
                                  {"kkt_violation", fitted.kkt_violation},
                                  {"channel_order", "layer * heads + head"}};
    return result;
  }

 private:
  Options options_;
};

// ------------------------------------------------------------ contact_probe

struct PairProbeImpl : torch::nn::Module {
  PairProbeImpl(int64_t dim, int64_t hidden) {
    mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(2 * dim, hidden), torch::nn::ReLU(),
                                                       torch::nn::Linear(hidden, 1)));
  }
  // Symmetric pair features [h_i * h_j, |h_i - h_j|] -> logit.
  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& b) {
    return mlp->forward(torch::cat({a * b, (a - b).abs()}, -1)).squeeze(-1);
  }
  torch::nn::Sequential mlp{nullptr};
};
TORCH_MODULE(PairProbe);

class ContactProbe : public EvaluationTask {
 public:
  explicit ContactProbe(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    const auto split = load_split(options_, model);
    const double threshold = options_.get_float("contact_threshold");
    const int64_t layer = options_.get_int("layer");
    std::vector<std::string> train_seqs, test_seqs;
    for (const auto& c : split.train) train_seqs.push_back(c.sequence);
    for (const auto& c : split.test) test_seqs.push_back(c.sequence);
    const auto train_features = residue_features(model, train_seqs, layer);
    const auto test_features = residue_features(model, test_seqs, layer);

    // All training residues in one matrix; pairs index into it.
    const auto all = torch::cat(train_features, 0);
    torch::Tensor mean, scale;  // not a structured binding: the scoring lambda captures them
    std::tie(mean, scale) = column_mean_std(all);
    scale = scale.clamp_min(1e-6);
    const auto h = (all - mean) / scale;
    std::vector<torch::Tensor> left, right, labels;
    int64_t offset = 0;
    for (size_t k = 0; k < split.train.size(); ++k) {
      const auto truth = contact_truth(split.train[k], threshold);
      const auto [i, j] = training_pairs(truth, options_.get_int("min_separation"));
      left.push_back(i + offset);
      right.push_back(j + offset);
      labels.push_back(truth.contacts.index({i, j}).to(torch::kFloat32));
      offset += train_features[k].size(0);
    }
    const auto a_index = torch::cat(left), b_index = torch::cat(right), y = torch::cat(labels);

    torch::manual_seed(static_cast<uint64_t>(options_.get_int("seed")));  // probe initialisation
    auto generator = make_generator(static_cast<uint64_t>(options_.get_int("seed")) + 1);
    PairProbe probe(h.size(1), options_.get_int("hidden"));
    torch::optim::AdamW optimizer(probe->parameters(),
                                  torch::optim::AdamWOptions(options_.get_float("learning_rate")).weight_decay(
                                      options_.get_float("weight_decay")));
    const int64_t steps = options_.get_int("steps"), batch = options_.get_int("batch_size");
    double last_loss = 0;
    {
      torch::AutoGradMode grad(true);
      for (int64_t step = 0; step < steps; ++step) {
        const auto pick = torch::randint(a_index.size(0), {batch}, generator, torch::kInt64);
        const auto logits = probe->forward(h.index({a_index.index({pick})}), h.index({b_index.index({pick})}));
        const auto loss = torch::binary_cross_entropy_with_logits(logits, y.index({pick}));
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        last_loss = 0.98 * last_loss + 0.02 * loss.item<double>();
      }
    }
    info("contact_probe: trained on ", a_index.size(0), " pairs of ", split.train.size(), " proteins, ", steps,
         " steps; smoothed loss ", last_loss);

    torch::NoGradGuard no_grad;
    size_t test_k = 0;
    EvalResult result;
    score_test_set(
        split, options_,
        [&](const ChainStructure& chain) {
          const auto f = (test_features[test_k++] - mean) / scale;
          const int64_t L = f.size(0);
          const auto upper = torch::triu_indices(L, L, 1);
          const auto p = torch::sigmoid(probe->forward(f.index({upper[0]}), f.index({upper[1]})));
          auto scores = torch::zeros({L, L});
          scores.index_put_({upper[0], upper[1]}, p);
          (void)chain;
          return scores + scores.t();
        },
        result);
    return result;
  }

 private:
  Options options_;
};

}  // namespace

void register_contact_tasks() {
  {
    OptionSchema schema;
    add_split_options(schema, 20);
    schema.add("l1_c", OptionType::Float)
        .default_value(0.15)
        .min(0, true)
        .doc("inverse L1 strength C of  C * sum(logloss) + ||w||_1  (scikit-learn convention; ESM used 0.15)");
    schema.add("min_separation", OptionType::Int).default_value(int64_t{6}).min(1).doc("training pairs have j - i >= this");
    schema.add("max_iterations", OptionType::Int).default_value(int64_t{3000}).min(1).doc("FISTA iteration cap");
    EvaluationTaskRegistry::instance().add(
        {"contact_unsupervised",
         std::string("ESM unsupervised contact protocol: symmetrised, APC-corrected attention maps of all layers and "
                     "heads -> L1-regularised logistic regression fitted on the training proteins (20 PSICOV chains "
                     "by default), precision on the rest. ") +
             kSplitDoc,
         schema, [](const Options& o) { return std::make_shared<UnsupervisedContacts>(o); }});
  }
  {
    OptionSchema schema;
    add_split_options(schema, 20);
    schema.add("layer", OptionType::Int).default_value(int64_t{-1}).doc("frozen representation (-1 = final)");
    schema.add("hidden", OptionType::Int).default_value(int64_t{64}).min(1).doc("probe MLP hidden units");
    schema.add("steps", OptionType::Int).default_value(int64_t{1500}).min(1).doc("AdamW steps");
    schema.add("batch_size", OptionType::Int).default_value(int64_t{1024}).min(1).doc("residue pairs per step");
    schema.add("learning_rate", OptionType::Float).default_value(1e-3).min(0, true).doc("AdamW learning rate");
    schema.add("weight_decay", OptionType::Float).default_value(1e-2).min(0).doc("AdamW weight decay");
    schema.add("min_separation", OptionType::Int).default_value(int64_t{6}).min(1).doc("training pairs have j - i >= this");
    EvaluationTaskRegistry::instance().add(
        {"contact_probe",
         std::string("Supervised contact probe on frozen features: per-residue representation (standardised with "
                     "training statistics) -> pair features [h_i*h_j, |h_i-h_j|] -> MLP (hidden units, ReLU) -> "
                     "logit, trained with BCE on uniformly drawn pairs (j - i >= min_separation) of the training "
                     "proteins. ") +
             kSplitDoc,
         schema, [](const Options& o) { return std::make_shared<ContactProbe>(o); }});
  }
}

}  // namespace sapling::evaluation
