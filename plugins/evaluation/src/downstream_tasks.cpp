// Downstream tasks: fitness regression, zero-shot variant effects, per-residue classification, structure-token/pGNN probes.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <set>

#include "downstream_support.hpp"
#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/fasta.hpp"
#include "sapling/log.hpp"
#include "sapling/internal/stats.hpp"
#include "support.hpp"
#include "tasks.hpp"

namespace sapling::evaluation {
namespace {

// ------------------------------------------------------------ shared

// Up to `cap` of `items` (0 = all) drawn with `seed`, kept in file order so results do not depend on the draw order.
std::vector<size_t> subsample(std::vector<size_t> items, int64_t cap, uint64_t seed) {
  if (cap <= 0 || static_cast<size_t>(cap) >= items.size()) return items;
  const auto order = seeded_permutation(items.size(), seed);
  std::vector<size_t> kept;
  for (size_t k = 0; k < static_cast<size_t>(cap); ++k) kept.push_back(items[order[k]]);
  std::sort(kept.begin(), kept.end());
  return kept;
}

std::string read_single_sequence(const std::filesystem::path& fasta) {
  const auto records = read_fasta(fasta);
  if (records.size() != 1) fail(fasta.string(), ": expected one wild-type sequence, found ", records.size());
  return records.front().sequence;
}

// Adds a metric and its per-item scores (for the bench's paired bootstrap).
void add_with_items(EvalResult& result, const std::string& name, const stats::ItemScores& items) {
  result.add(name, stats::evaluate(items));
  result.extra["items"][name] = stats::to_json(items);
}

// ------------------------------------------------------------ fitness

class Fitness : public EvaluationTask {
 public:
  explicit Fitness(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    const std::string split = options_.get_string("split");
    const auto path = data_path(options_.get_path("data"), "downstream/flip_gb1/" + split + ".csv.gz", "data");
    const auto rows = read_fitness_csv(path);
    const uint64_t seed = static_cast<uint64_t>(options_.get_int("seed"));

    std::vector<size_t> train, valid, test;
    for (size_t i = 0; i < rows.size(); ++i) (rows[i].test ? test : rows[i].validation ? valid : train).push_back(i);
    if (valid.empty()) {
      // No validation column: a seeded tenth of the training rows chooses the regularisation.
      const auto order = seeded_permutation(train.size(), seed + 7);
      const size_t n = std::max<size_t>(1, train.size() / 10);
      if (train.size() < 2) fail(path.string(), ": ", train.size(), " training rows: too few to hold out validation rows");
      std::vector<size_t> rest;
      for (size_t k = 0; k < train.size(); ++k) (k < n ? valid : rest).push_back(train[order[k]]);
      std::sort(valid.begin(), valid.end());
      std::sort(rest.begin(), rest.end());
      train = rest;
    }
    if (train.empty()) fail(path.string(), ": no training rows outside the validation set");
    train = subsample(train, options_.get_int("max_train"), seed);
    valid = subsample(valid, options_.get_int("max_valid"), seed + 1);
    test = subsample(test, options_.get_int("max_test"), seed + 2);

    const auto features = row_features(model, rows, train, valid, test, path);
    auto stack = [&](const std::vector<size_t>& idx) {
      std::vector<torch::Tensor> x;
      for (size_t i : idx) x.push_back(features.at(i));
      return torch::stack(x);
    };
    auto targets = [&](const std::vector<size_t>& idx) {
      std::vector<double> y;
      for (size_t i : idx) y.push_back(rows[i].target);
      return y;
    };
    const auto x_train = stack(train), x_valid = stack(valid), x_test = stack(test);
    const auto y_train = targets(train), y_valid = targets(valid), y_test = targets(test);

    // Regularisation chosen by validation Spearman (first best on ties), then refit on train + validation.
    double best_lambda = 0, best_rho = -2;
    nlohmann::json grid = nlohmann::json::array();
    for (const double lambda : options_.get_float_list("lambdas")) {
      const double rho =
          stats::spearman(to_vector(fit_ridge(x_train, torch::tensor(y_train, torch::kFloat64), lambda).predict(x_valid)), y_valid);
      grid.push_back({{"lambda", lambda}, {"valid_spearman", std::isfinite(rho) ? rho : -2.0}});
      if (std::isfinite(rho) && rho > best_rho) best_rho = rho, best_lambda = lambda;
    }
    if (best_rho < -1) {
      warn("fitness: the validation Spearman is undefined for every lambda (constant targets?); using lambda = ",
           options_.get_float_list("lambdas").front());
      best_lambda = options_.get_float_list("lambdas").front();
    }
    auto y_fit = y_train;
    y_fit.insert(y_fit.end(), y_valid.begin(), y_valid.end());
    const auto fitted = fit_ridge(torch::cat({x_train, x_valid}), torch::tensor(y_fit, torch::kFloat64), best_lambda);
    const auto predicted = to_vector(fitted.predict(x_test));

    EvalResult result;
    add_with_items(result, "spearman", {"spearman", {predicted, y_test}});
    result.add("valid_spearman", best_rho < -1 ? std::nan("") : best_rho);
    result.add("lambda", best_lambda);
    result.add("train_rows", static_cast<double>(train.size()));
    result.add("valid_rows", static_cast<double>(valid.size()));
    result.add("test_rows", static_cast<double>(test.size()));
    result.add("feature_dim", static_cast<double>(x_train.size(1)));
    result.extra["lambda_grid"] = grid;
    result.extra["data"] = path.string();
    return result;
  }

 private:
  // Features of every used row: mean over residues, or the concatenated residues at the mutated sites.
  std::map<size_t, torch::Tensor> row_features(SequenceEncoder& model, const std::vector<FitnessRow>& rows,
                                               const std::vector<size_t>& train, const std::vector<size_t>& valid,
                                               const std::vector<size_t>& test, const std::filesystem::path& path) const {
    std::vector<size_t> used(train);
    used.insert(used.end(), valid.begin(), valid.end());
    used.insert(used.end(), test.begin(), test.end());
    std::vector<std::string> sequences;
    for (size_t i : used) sequences.push_back(rows[i].sequence);
    const auto per_residue = residue_features(model, sequences, options_.get_int("layer"), 4096, "fitness features");
    std::map<size_t, torch::Tensor> out;
    if (options_.get_string("pooling") == "mean") {
      for (size_t k = 0; k < used.size(); ++k) out[used[k]] = per_residue[k].mean(0);
      return out;
    }
    // pooling = sites: positions where any used row differs from the wild type.
    const auto wild_type = read_single_sequence(
        data_path(options_.get_path("wild_type"), "downstream/flip_gb1/5LDE_1.fasta", "wild_type"));
    std::vector<int64_t> sites;
    for (size_t k = 0; k < used.size(); ++k) {
      const auto& s = rows[used[k]].sequence;
      if (s.size() != wild_type.size())
        fail(path.string(), ":", rows[used[k]].line, ": pooling=sites needs substitutions only: the sequence has ", s.size(),
             " residues, the wild type ", wild_type.size());
      for (size_t p = 0; p < s.size(); ++p)
        if (s[p] != wild_type[p] && std::find(sites.begin(), sites.end(), static_cast<int64_t>(p)) == sites.end())
          sites.push_back(static_cast<int64_t>(p));
    }
    if (sites.empty()) fail(path.string(), ": pooling=sites: no row differs from the wild type");
    std::sort(sites.begin(), sites.end());
    const auto index = torch::tensor(sites, torch::kInt64);
    for (size_t k = 0; k < used.size(); ++k) out[used[k]] = per_residue[k].index_select(0, index).flatten();
    return out;
  }

  Options options_;
};

// ------------------------------------------------------------ variant_effect

class VariantEffect : public EvaluationTask {
 public:
  explicit VariantEffect(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    const bool default_data = options_.get_path("data").empty();
    const auto path = data_path(options_.get_path("data"), "downstream/dms/BLAT_ECOLX_Ranganathan2015.csv.gz", "data");
    const std::string mutant_column = options_.get_string("mutant_column");
    const int64_t first = options_.get_int("first_position");
    std::string wild_type;
    if (!options_.get_path("wild_type").empty() || default_data)
      wild_type = read_single_sequence(data_path(options_.get_path("wild_type"), "downstream/dms/BLAT_ECOLX.fasta", "wild_type"));
    else
      wild_type = wild_type_from_variants(path, mutant_column, first);
    auto table = read_variant_csv(path, mutant_column, options_.get_string("score_column"), wild_type, first);
    const auto kept = subsample([&] {
      std::vector<size_t> all(table.rows.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = i;
      return all;
    }(), options_.get_int("max_variants"), static_cast<uint64_t>(options_.get_int("seed")));

    std::set<int64_t> position_set;
    int64_t multi = 0;
    for (size_t i : kept) {
      for (const auto& m : table.rows[i].mutations) position_set.insert(m.index);
      multi += table.rows[i].mutations.size() > 1;
    }
    const std::vector<int64_t> positions(position_set.begin(), position_set.end());
    const auto wt_marginal = residue_log_probs(model, wild_type, false);
    const auto masked_marginal = residue_log_probs(model, wild_type, true, positions, options_.get_int("batch"));

    std::vector<double> measured, masked, unmasked;
    for (size_t i : kept) {
      measured.push_back(table.rows[i].score);
      masked.push_back(marginal_score(masked_marginal, table.rows[i].mutations, model.tokenizer()));
      unmasked.push_back(marginal_score(wt_marginal, table.rows[i].mutations, model.tokenizer()));
    }
    EvalResult result;
    add_with_items(result, "spearman_masked_marginal", {"spearman", {masked, measured}});
    add_with_items(result, "spearman_wt_marginal", {"spearman", {unmasked, measured}});
    result.add("variants", static_cast<double>(kept.size()));
    result.add("multi_mutants", static_cast<double>(multi));
    result.add("positions", static_cast<double>(positions.size()));
    result.add("rows_without_score", static_cast<double>(table.rows_without_score));
    result.extra["data"] = path.string();
    return result;
  }

 private:
  Options options_;
};

// ------------------------------------------------------------ residue_classification

// Dataset conventions: label digits and the default split of each FLIP folder.
struct ResidueDataset {
  std::string folder, default_split;
  int64_t first_label, last_label;
  std::vector<std::string> class_names;
};

const ResidueDataset& residue_dataset(const std::string& name) {
  // Bind digits are the bits SNM (small, nucleic, metal) of FLIP's README.
  static const ResidueDataset bind{"downstream/flip_bind", "one_vs_many", 0, 7,
                                   {"none", "metal", "nucleic", "nucleic+metal", "small", "small+metal", "small+nucleic",
                                    "small+nucleic+metal"}};
  static const ResidueDataset conservation{"downstream/flip_conservation", "sampled", 1, 9,
                                           {"1", "2", "3", "4", "5", "6", "7", "8", "9"}};
  return name == "bind" ? bind : conservation;
}

class ResidueClassification : public EvaluationTask {
 public:
  explicit ResidueClassification(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    const std::string name = options_.get_string("dataset");
    const auto& ds = residue_dataset(name);
    const auto folder = data_path(options_.get_path("data"), ds.folder, "data");
    const std::string split = options_.get_string("split").empty() ? ds.default_split : options_.get_string("split");
    LabelReport repeats;
    const auto chains = read_residue_labels(data_path(folder / "sequences.fasta.gz", "", "data"),
                                            data_path(folder / (split + ".fasta.gz"), "", "split"), ds.first_label,
                                            ds.last_label, &repeats);
    if (repeats.repeated)
      warn(folder.string(), "/", split, ".fasta.gz: ", repeats.repeated, " repeated IDs kept once (", repeats.conflicting,
           " listed in two sets: kept in the held-out one)");
    const uint64_t seed = static_cast<uint64_t>(options_.get_int("seed"));
    std::vector<size_t> train, valid, test;
    for (size_t i = 0; i < chains.size(); ++i) (chains[i].test ? test : chains[i].validation ? valid : train).push_back(i);
    const std::string where = (folder / (split + ".fasta.gz")).string();
    if (train.empty() || valid.empty() || test.empty())
      fail(where, ": ", train.size(), " train, ", valid.size(), " validation and ", test.size(),
           " test chains (each split needs at least one: SET=train/test, VALIDATION=True marks validation)");
    train = subsample(train, options_.get_int("max_train_proteins"), seed);
    valid = subsample(valid, options_.get_int("max_valid_proteins"), seed + 1);
    test = subsample(test, options_.get_int("max_test_proteins"), seed + 2);

    auto features_of = [&](const std::vector<size_t>& idx, const std::string& label) {
      std::vector<std::string> seqs;
      std::vector<torch::Tensor> y;
      for (size_t i : idx) seqs.push_back(chains[i].sequence), y.push_back(torch::tensor(chains[i].labels, torch::kInt64));
      auto f = residue_features(model, seqs, options_.get_int("layer"), 4096, label);
      return std::make_pair(f, y);
    };
    auto [f_train, y_train] = features_of(train, name + " train features");
    auto [f_valid, y_valid] = features_of(valid, name + " valid features");
    auto [f_test, y_test] = features_of(test, name + " test features");
    auto x_train = torch::cat(f_train), x_valid = torch::cat(f_valid);
    auto [mean, scale] = column_mean_std(x_train);
    scale = scale.clamp_min(1e-6);
    x_train = (x_train - mean) / scale;
    x_valid = (x_valid - mean) / scale;

    const auto classes = static_cast<int64_t>(ds.class_names.size());
    double best_valid = 0;
    auto probe = train_probe(x_train, torch::cat(y_train), x_valid, torch::cat(y_valid), classes, probe_settings(options_),
                             best_valid);

    // Per test protein: argmax classes and the binary prediction of the task.
    std::vector<std::vector<int64_t>> predicted, binary, truth;
    {
      torch::NoGradGuard no_grad;
      for (size_t k = 0; k < test.size(); ++k) {
        const auto probs = torch::softmax(probe->forward((f_test[k] - mean) / scale), 1);
        const auto arg = probs.argmax(1).contiguous();
        predicted.emplace_back(arg.data_ptr<int64_t>(), arg.data_ptr<int64_t>() + arg.numel());
        truth.push_back(chains[test[k]].labels);
        // bind: binds anything when P(no binding) < 0.5; conservation: the argmax class is conserved.
        const auto bin = (name == "bind" ? probs.select(1, 0).lt(0.5) : arg.ge(conserved_class())).to(torch::kInt64).contiguous();
        binary.emplace_back(bin.data_ptr<int64_t>(), bin.data_ptr<int64_t>() + bin.numel());
      }
    }
    EvalResult result;
    stats::ItemScores hits{"ratio", {{}, {}}};
    for (size_t k = 0; k < test.size(); ++k) {
      double h = 0;
      for (size_t i = 0; i < truth[k].size(); ++i) h += predicted[k][i] == truth[k][i];
      hits.columns[0].push_back(h);
      hits.columns[1].push_back(static_cast<double>(truth[k].size()));
    }
    add_with_items(result, name == "bind" ? "accuracy" : "Q9", hits);
    // Binary metrics: bind "binds anything" (label != 0); conservation two-state (class >= conserved_from).
    const int64_t conserved = conserved_class();
    add_confusion_metrics(result, name == "bind" ? "binding" : "2state", binary, truth,
                          [&](int64_t p, int64_t t) -> std::pair<bool, bool> {
                            return {p != 0, name == "bind" ? t != 0 : t >= conserved};
                          });
    if (name == "bind")
      for (int64_t c = 0; c < classes; ++c)
        add_confusion_metrics(result, ds.class_names[static_cast<size_t>(c)], predicted, truth,
                              [c](int64_t p, int64_t t) -> std::pair<bool, bool> { return {p == c, t == c}; });
    result.add("valid_accuracy", best_valid);
    result.add("train_chains", static_cast<double>(train.size()));
    result.add("valid_chains", static_cast<double>(valid.size()));
    result.add("test_chains", static_cast<double>(test.size()));
    result.add("train_residues", static_cast<double>(x_train.size(0)));
    result.add("test_residues", std::accumulate(hits.columns[1].begin(), hits.columns[1].end(), 0.0));
    result.add("repeated_ids", static_cast<double>(repeats.repeated));
    result.add("conflicting_repeats", static_cast<double>(repeats.conflicting));
    result.extra["split"] = where;
    return result;
  }

 private:
  int64_t conserved_class() const { return options_.get_int("conserved_from") - 1; }  // class index of the first conserved class

  // MCC_<suffix> and F1_<suffix> of the pooled confusion, with per-protein confusions as items.
  static void add_confusion_metrics(EvalResult& result, const std::string& suffix,
                                    const std::vector<std::vector<int64_t>>& predicted,
                                    const std::vector<std::vector<int64_t>>& truth,
                                    const std::function<std::pair<bool, bool>(int64_t, int64_t)>& positive) {
    stats::ItemScores items{"mcc", {{}, {}, {}, {}}};
    for (size_t k = 0; k < truth.size(); ++k) {
      stats::Confusion c;
      for (size_t i = 0; i < truth[k].size(); ++i) {
        const auto [p, t] = positive(predicted[k][i], truth[k][i]);
        (p ? (t ? c.tp : c.fp) : (t ? c.fn : c.tn)) += 1;
      }
      items.columns[0].push_back(c.tp);
      items.columns[1].push_back(c.fp);
      items.columns[2].push_back(c.fn);
      items.columns[3].push_back(c.tn);
    }
    add_with_items(result, "MCC_" + suffix, items);
    items.kind = "f1";
    add_with_items(result, "F1_" + suffix, items);
  }

  Options options_;
};


// ------------------------------------------------------------ structure_probe

class StructureProbe : public EvaluationTask {
 public:
  explicit StructureProbe(Options options) : options_(std::move(options)) {}

  EvalResult run(SequenceEncoder& model) override {
    if (options_.get_path("dataset").empty())
      fail("structure_probe: option 'dataset' is required: a folder written by `sapling prepare ... --tokenizer "
           "foldseek_3di [--pgnn gearnet ...]`");
    const StructureDataset data(data_path(options_.get_path("dataset"), "", "dataset"));
    if (!data.has_tokens() && !data.has_embeddings())
      fail(data.path().string(), ": the dataset has neither structure tokens nor pGNN embeddings (prepare it with "
           "--tokenizer and/or --embed)");
    const uint64_t seed = static_cast<uint64_t>(options_.get_int("seed"));
    auto fit = subsample(data.indices(options_.get_string("train_split")), options_.get_int("max_train_chains"), seed);
    const auto test = subsample(data.indices(options_.get_string("test_split")), options_.get_int("max_test_chains"), seed + 1);
    if (fit.size() < 2 || test.empty())
      fail(data.path().string(), ": ", fit.size(), " '", options_.get_string("train_split"), "' and ", test.size(), " '",
           options_.get_string("test_split"), "' chains (need at least 2 and 1; options train_split / test_split)");
    // A seeded slice of the training chains for early stopping and the ridge penalty.
    const auto order = seeded_permutation(fit.size(), seed + 2);
    const size_t n_valid = std::clamp<size_t>(
        static_cast<size_t>(std::ceil(options_.get_float("valid_fraction") * static_cast<double>(fit.size()))), 1, fit.size() - 1);
    std::vector<size_t> valid, train;
    for (size_t k = 0; k < fit.size(); ++k) (k < n_valid ? valid : train).push_back(fit[order[k]]);

    // Per chain: features of the observed residues and their structure token / embedding.
    struct Set {
      torch::Tensor x, tokens, token_x, embeddings;
      std::vector<int64_t> token_counts, residue_counts;
    };
    auto load = [&](const std::vector<size_t>& idx, const std::string& label) {
      std::vector<std::string> seqs;
      for (size_t i : idx) seqs.push_back(data.chain(i).sequence);
      const auto features = residue_features(model, seqs, options_.get_int("layer"), 4096, label);
      std::vector<torch::Tensor> x, tx, t, e;
      Set set;
      for (size_t k = 0; k < idx.size(); ++k) {
        const auto observed = data.chain(idx[k]).observed.to(torch::kBool);
        x.push_back(features[k].index({observed}));
        set.residue_counts.push_back(observed.sum().item<int64_t>());
        if (data.has_embeddings()) e.push_back(data.embeddings(idx[k]).to(torch::kFloat32).index({observed}));
        if (data.has_tokens()) {
          const auto tokens = data.tokens(idx[k]).to(torch::kInt64);
          const auto keep = observed & tokens.ne(data.token_mask_state());
          tx.push_back(features[k].index({keep}));
          t.push_back(tokens.index({keep}));
          set.token_counts.push_back(keep.sum().item<int64_t>());
        }
      }
      set.x = torch::cat(x);
      if (data.has_embeddings()) set.embeddings = torch::cat(e);
      if (data.has_tokens()) set.token_x = torch::cat(tx), set.tokens = torch::cat(t);
      return set;
    };
    const auto tr = load(train, "train features"), va = load(valid, "valid features"), te = load(test, "test features");

    EvalResult result;
    if (data.has_tokens()) {
      auto [mean, scale] = column_mean_std(tr.token_x);
      scale = scale.clamp_min(1e-6);
      const auto settings = probe_settings(options_);
      double best_valid = 0;
      auto probe = train_probe((tr.token_x - mean) / scale, tr.tokens, (va.token_x - mean) / scale, va.tokens,
                               static_cast<int64_t>(data.token_symbols().size()), settings, best_valid);
      torch::NoGradGuard no_grad;
      const auto hits = probe->forward((te.token_x - mean) / scale).argmax(1).eq(te.tokens).to(torch::kFloat64);
      stats::ItemScores items{"ratio", {{}, {}}};
      for (const auto& h : hits.split_with_sizes(te.token_counts))
        items.columns[0].push_back(h.sum().item<double>()), items.columns[1].push_back(static_cast<double>(h.numel()));
      add_with_items(result, "token_accuracy", items);
      // Chance level: always answering the most frequent training token.
      const auto majority = std::get<0>(torch::mode(tr.tokens)).item<int64_t>();
      result.add("token_majority", te.tokens.eq(majority).to(torch::kFloat64).mean().item<double>());
      result.add("token_valid_accuracy", best_valid);
      result.add("token_states", static_cast<double>(data.token_symbols().size()));
      result.extra["tokenizer"] = data.tokenizer();
    }
    if (data.has_embeddings()) {
      // Penalty by validation R^2, then refit on train + validation; R^2 against the training mean (so it splits per chain).
      double best_lambda = 0, best_r2 = -1e300;
      for (const double lambda : options_.get_float_list("lambdas")) {
        const auto p = fit_ridge(tr.x, tr.embeddings, lambda).predict(va.x);
        const double r2 = 1 - (p - va.embeddings.to(torch::kFloat64)).square().sum().item<double>() /
                                  (va.embeddings.to(torch::kFloat64) - tr.embeddings.to(torch::kFloat64).mean(0)).square().sum().item<double>();
        if (r2 > best_r2) best_r2 = r2, best_lambda = lambda;
      }
      const auto fitted = fit_ridge(torch::cat({tr.x, va.x}), torch::cat({tr.embeddings, va.embeddings}), best_lambda);
      const auto target = te.embeddings.to(torch::kFloat64);
      const auto residual = (fitted.predict(te.x) - target).square().sum(1), total = (target - fitted.bias).square().sum(1);
      stats::ItemScores items{"r2", {{}, {}}};
      const auto r = residual.split_with_sizes(te.residue_counts), t = total.split_with_sizes(te.residue_counts);
      for (size_t k = 0; k < r.size(); ++k)
        items.columns[0].push_back(r[k].sum().item<double>()), items.columns[1].push_back(t[k].sum().item<double>());
      add_with_items(result, "embedding_r2", items);
      result.add("embedding_valid_r2", best_r2);
      result.add("embedding_lambda", best_lambda);
      result.add("embedding_dim", static_cast<double>(data.embedding_dim()));
    }
    result.add("train_chains", static_cast<double>(train.size()));
    result.add("valid_chains", static_cast<double>(valid.size()));
    result.add("test_chains", static_cast<double>(test.size()));
    result.add("test_residues", static_cast<double>(te.x.size(0)));
    return result;
  }

 private:
  Options options_;
};
}  // namespace

void register_downstream_tasks() {
  {
    OptionSchema schema;
    schema.add("split", OptionType::String)
        .default_value(std::string("three_vs_rest"))
        .one_of({"one_vs_rest", "two_vs_rest", "three_vs_rest", "low_vs_high", "sampled"})
        .doc("FLIP GB1 split read from <data>/downstream/flip_gb1/<split>.csv.gz (ignored when `data` is given)");
    schema.add("data", OptionType::Path).default_value(std::string())
        .doc("any CSV with sequence,target,set[,validation] columns (set = train/test; validation True marks the "
             "validation rows among the train rows; without it a seeded tenth of the train rows is held out)");
    schema.add("wild_type", OptionType::Path).default_value(std::string())
        .doc("wild-type FASTA for pooling=sites; default <data>/downstream/flip_gb1/5LDE_1.fasta");
    schema.add("pooling", OptionType::String).default_value(std::string("mean")).one_of({"mean", "sites"})
        .doc("mean over residues, or the concatenated residue features at the sites where any used row differs "
             "from the wild type (GB1: V39, D40, G41, V54 -> 4 x D features)");
    schema.add("layer", OptionType::Int).default_value(int64_t{-1}).doc("frozen representation (-1 = final)");
    schema.add("lambdas", OptionType::FloatList)
        .default_value(std::vector<double>{1e-2, 1e-1, 1, 10, 100, 1e3, 1e4, 1e5})
        .doc("ridge penalties tried (on standardised features); the best validation Spearman wins");
    schema.add("max_train", OptionType::Int).default_value(int64_t{500}).min(0).doc("seeded cap on training rows (0 = all)");
    schema.add("max_valid", OptionType::Int).default_value(int64_t{100}).min(0).doc("seeded cap on validation rows (0 = all)");
    schema.add("max_test", OptionType::Int).default_value(int64_t{500}).min(0).doc("seeded cap on test rows (0 = all)");
    schema.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the row subsamples");
    EvaluationTaskRegistry::instance().add(
        {"fitness",
         "Fitness regression on frozen features (FLIP GB1 by default): ridge regression from mean-pooled (or "
         "mutated-site) per-residue features to the target. Split: FLIP's set column (train/test); the penalty "
         "is chosen among `lambdas` by Spearman on FLIP's validation rows (fitted on the other train rows), then "
         "refitted on train + validation. Metric: Spearman between predicted and measured target on the test rows. "
         "Rows are subsampled with `seed` (max_train/max_valid/max_test; 0 = all rows of the split).",
         schema, [](const Options& o) { return std::make_shared<Fitness>(o); }});
  }
  {
    OptionSchema schema;
    schema.add("data", OptionType::Path).default_value(std::string())
        .doc("DMS CSV; default <data>/downstream/dms/BLAT_ECOLX_Ranganathan2015.csv.gz (TEM-1, 4,996 single mutants). "
             "ProteinGym substitution files (mutant, mutated_sequence, DMS_score) work too");
    schema.add("wild_type", OptionType::Path).default_value(std::string())
        .doc("wild-type FASTA; default <data>/downstream/dms/BLAT_ECOLX.fasta with the default data, else derived "
             "from the first row's mutated_sequence");
    schema.add("mutant_column", OptionType::String).default_value(std::string("mutant"))
        .doc("column of mutant strings like H24C or H24C:A25G");
    schema.add("score_column", OptionType::String).default_value(std::string("2500"))
        .doc("measured effect (TEM-1: fitness at 2500 ug/ml ampicillin, as DeepSequence and ESM-1v; ProteinGym: DMS_score)");
    schema.add("first_position", OptionType::Int).default_value(int64_t{24})
        .doc("number of the wild type's first residue in the mutant strings (TEM-1 table: 24; ProteinGym: 1)");
    schema.add("max_variants", OptionType::Int).default_value(int64_t{0}).min(0).doc("seeded cap on scored variants (0 = all)");
    schema.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the variant subsample");
    schema.add("batch", OptionType::Int).default_value(int64_t{16}).min(1).doc("masked copies of the wild type per forward pass");
    EvaluationTaskRegistry::instance().add(
        {"variant_effect",
         "Zero-shot variant effects (ESM-1v): for each mutant, the sum over its substitutions of log p(new) - "
         "log p(wild type) at the mutated position, from the wild type with that position masked "
         "(masked marginal; multi-mutants: each position masked on its own, as ProteinGym) and from the unmasked "
         "wild type (wild-type marginal). Metric: Spearman of each score against `score_column` over all variants; "
         "rows with an empty measurement are skipped and counted. A mutant that does not match the wild type is "
         "an error naming the row. No training, no split.",
         schema, [](const Options& o) { return std::make_shared<VariantEffect>(o); }});
  }
  {
    OptionSchema schema;
    schema.add("dataset", OptionType::String).default_value(std::string("bind")).one_of({"bind", "conservation"})
        .doc("bind: FLIP binding residues, 8 classes from the small/nucleic/metal bits; conservation: 9 ConSurf classes");
    schema.add("data", OptionType::Path).default_value(std::string())
        .doc("FLIP folder with sequences.fasta.gz and <split>.fasta.gz; default <data>/downstream/flip_<dataset>");
    schema.add("split", OptionType::String).default_value(std::string())
        .doc("label file <split>.fasta.gz (default: one_vs_many for bind, sampled for conservation)");
    schema.add("max_train_proteins", OptionType::Int).default_value(int64_t{400}).min(0).doc("seeded cap on training chains (0 = all)");
    schema.add("max_valid_proteins", OptionType::Int).default_value(int64_t{100}).min(0).doc("seeded cap on validation chains (0 = all)");
    schema.add("max_test_proteins", OptionType::Int).default_value(int64_t{200}).min(0).doc("seeded cap on test chains (0 = all: bind 250, conservation 519)");
    schema.add("conserved_from", OptionType::Int).default_value(int64_t{6}).min(2).max(9)
        .doc("conservation: classes >= this are 'conserved' in the two-state MCC (Marquet et al. 2021: 6-9 vs 1-5)");
    schema.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the chain subsamples and the probe");
    schema.add("layer", OptionType::Int).default_value(int64_t{-1}).doc("frozen representation (-1 = final)");
    add_probe_options(schema);
    EvaluationTaskRegistry::instance().add(
        {"residue_classification",
         "Per-residue classification probe on frozen features (FLIP bind or conservation). Split: FLIP's labels, "
         "SET=train/test, VALIDATION=True train chains for early stopping; chains subsampled with `seed`. Features "
         "standardised with training statistics; a linear (or mlp) probe trained with AdamW. Metrics on all test "
         "residues pooled: bind: accuracy (8 classes), MCC/F1 of 'binds anything' (P(no binding) < 0.5) and "
         "one-vs-rest MCC/F1 of each class; conservation: Q9 and the two-state MCC/F1 (class >= conserved_from).",
         schema, [](const Options& o) { return std::make_shared<ResidueClassification>(o); }});
  }
  {
    OptionSchema schema;
    schema.add("dataset", OptionType::Path).default_value(std::string())
        .doc("prepared structure dataset (sapling prepare ... --tokenizer foldseek_3di [--pgnn gearnet ...]); required");
    schema.add("train_split", OptionType::String).default_value(std::string("train")).doc("dataset split the maps are fitted on");
    schema.add("test_split", OptionType::String).default_value(std::string("valid")).doc("held-out dataset split they are scored on");
    schema.add("max_train_chains", OptionType::Int).default_value(int64_t{300}).min(0).doc("seeded cap on fitting chains (0 = all)");
    schema.add("max_test_chains", OptionType::Int).default_value(int64_t{100}).min(0).doc("seeded cap on held-out chains (0 = all)");
    schema.add("valid_fraction", OptionType::Float).default_value(0.1).min(0, true).max(1, true)
        .doc("seeded slice of the fitting chains for early stopping and the ridge penalty");
    schema.add("lambdas", OptionType::FloatList).default_value(std::vector<double>{1e-1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6})
        .doc("ridge penalties of the embedding map (best validation R^2 wins)");
    schema.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seed of the chain subsamples and the probe");
    schema.add("layer", OptionType::Int).default_value(int64_t{-1}).doc("frozen representation (-1 = final)");
    add_probe_options(schema);
    EvaluationTaskRegistry::instance().add(
        {"structure_probe",
         "How much structure the frozen pLM features carry: a linear probe (softmax, AdamW, early stopping on a "
         "validation slice) from each observed residue's features to its structure token (the dataset's tokenizer, "
         "e.g. 3Di; mask-state residues skipped) -> token_accuracy; and a ridge map to the dataset's per-residue "
         "pGNN embeddings -> embedding_r2 = 1 - sum ||pred - e||^2 / sum ||e - mean of the fitting embeddings||^2. "
         "Fitted on `train_split` chains, scored on `test_split` chains (the dataset's own split, drawn by complex).",
         schema, [](const Options& o) { return std::make_shared<StructureProbe>(o); }});
  }
}

}  // namespace sapling::evaluation
