// FLIP CSV and label readers, mutant parsing and DMS tables, masked/wild-type marginals, ridge regression.
#include "downstream_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/fasta.hpp"
#include "sapling/files.hpp"
#include "sapling/progress.hpp"
#include "support.hpp"

namespace sapling::evaluation {
namespace {

constexpr const char* kStandardResidues = "ACDEFGHIKLMNPQRSTVWY";

// A simple CSV table: header names and rows of fields with their 1-based line.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::pair<size_t, std::vector<std::string>>> rows;

  // Index of column `name`; fails naming the file and the columns present.
  size_t column(const std::string& name, const std::string& where) const {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) {
      std::string present;
      for (const auto& h : header) present += (present.empty() ? "" : ", ") + ("'" + h + "'");
      fail(where, ":1: no column '", name, "' (columns: ", present, ")");
    }
    return static_cast<size_t>(it - header.begin());
  }
  bool has(const std::string& name) const { return std::find(header.begin(), header.end(), name) != header.end(); }
};

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::stringstream ss(line);
  while (std::getline(ss, field, ',')) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();  // getline drops a trailing empty field
  return fields;
}

CsvTable read_csv(const std::filesystem::path& path) {
  std::istringstream in(read_maybe_gzipped(path));
  const std::string where = path.string();
  CsvTable table;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    if (line.empty()) continue;
    if (line.find('"') != std::string::npos) fail(where, ":", line_no, ": quoted CSV fields are not supported");
    auto fields = split_commas(line);
    if (table.header.empty()) {
      table.header = std::move(fields);
      continue;
    }
    if (fields.size() != table.header.size())
      fail(where, ":", line_no, ": expected ", table.header.size(), " comma-separated fields (as the header), got ", fields.size());
    table.rows.emplace_back(line_no, std::move(fields));
  }
  if (table.header.empty()) fail(where, ": empty file (expected a CSV header)");
  return table;
}

// Parses a whole field as a number; `ok` false when it is not one (empty, text, trailing junk).
double parse_number(const std::string& text, bool& ok) {
  const char* begin = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  ok = end != begin && *end == '\0';
  return v;
}

bool parse_flag(const std::string& text, bool& value) {
  if (text.empty() || text == "False" || text == "false" || text == "0") return value = false, true;
  if (text == "True" || text == "true" || text == "1") return value = true, true;
  return false;
}

// Value of "KEY=value" in a FASTA description; empty when absent.
std::string header_field(const std::string& description, const std::string& key) {
  std::istringstream in(description);
  std::string word;
  while (in >> word)
    if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
  return {};
}

}  // namespace

// ------------------------------------------------------------ FLIP regression CSV

std::vector<FitnessRow> read_fitness_csv(const std::filesystem::path& path) {
  const auto table = read_csv(path);
  const std::string where = path.string();
  const size_t c_seq = table.column("sequence", where), c_target = table.column("target", where),
               c_set = table.column("set", where);
  const bool has_validation = table.has("validation");
  const size_t c_valid = has_validation ? table.column("validation", where) : 0;
  std::vector<FitnessRow> rows;
  size_t train = 0, test = 0;
  for (const auto& [line, f] : table.rows) {
    FitnessRow row;
    row.line = line;
    row.sequence = f[c_seq];
    if (row.sequence.empty()) fail(where, ":", line, ": empty sequence");
    bool ok = false;
    row.target = parse_number(f[c_target], ok);
    if (!ok || !std::isfinite(row.target)) fail(where, ":", line, ": target '", f[c_target], "' is not a finite number");
    if (f[c_set] != "train" && f[c_set] != "test") fail(where, ":", line, ": set '", f[c_set], "' (expected train or test)");
    row.test = f[c_set] == "test";
    if (has_validation && !parse_flag(f[c_valid], row.validation))
      fail(where, ":", line, ": validation '", f[c_valid], "' (expected True, False or empty)");
    if (row.test && row.validation) fail(where, ":", line, ": a test row marked as validation");
    (row.test ? test : train) += 1;
    rows.push_back(std::move(row));
  }
  if (train == 0 || test == 0) fail(where, ": ", train, " train and ", test, " test rows (need both)");
  return rows;
}

// ------------------------------------------------------------ FLIP per-residue labels

std::vector<LabelledChain> read_residue_labels(const std::filesystem::path& sequences, const std::filesystem::path& labels,
                                               int64_t first_label, int64_t last_label, LabelReport* report) {
  std::map<std::string, std::string> by_id;
  for (auto& r : read_fasta(sequences)) by_id[r.label] = std::move(r.sequence);
  FastaOptions digits;
  digits.extra_characters = "0123456789";
  digits.allow_duplicate_labels = true;  // resolved below
  std::vector<LabelledChain> out;
  std::map<std::string, std::pair<size_t, size_t>> seen;  // ID -> (index in out, line)
  LabelReport counts;
  for (const auto& r : read_fasta(labels, digits)) {
    const std::string where = labels.string() + ":" + std::to_string(r.line) + ": " + r.label;
    const auto it = by_id.find(r.label);
    if (it == by_id.end()) fail(where, ": no sequence with this ID in ", sequences.string());
    LabelledChain chain;
    chain.id = r.label;
    chain.sequence = it->second;
    if (r.sequence.size() != chain.sequence.size())
      fail(where, ": ", r.sequence.size(), " labels for a sequence of ", chain.sequence.size(), " residues");
    for (size_t i = 0; i < r.sequence.size(); ++i) {
      const char c = r.sequence[i];
      const int64_t v = c >= '0' && c <= '9' ? c - '0' : -1;
      if (v < first_label || v > last_label)
        fail(where, ": residue ", i + 1, ": label '", std::string(1, c), "' (expected a digit ", first_label, "-", last_label, ")");
      chain.labels.push_back(v - first_label);
    }
    const auto set = header_field(r.description, "SET"), valid = header_field(r.description, "VALIDATION");
    if (set != "train" && set != "test") fail(where, ": SET='", set, "' (expected SET=train or SET=test in the header)");
    chain.test = set == "test";
    if (valid.empty() || !parse_flag(valid, chain.validation))
      fail(where, ": VALIDATION='", valid, "' (expected VALIDATION=True or VALIDATION=False in the header)");
    if (const auto it = seen.find(chain.id); it != seen.end()) {
      auto& first = out[it->second.first];
      if (first.labels != chain.labels)
        fail(where, ": repeats the ID of line ", it->second.second, " with different labels");
      ++counts.repeated;
      if (first.test != chain.test || first.validation != chain.validation) {
        ++counts.conflicting;
        first.test = first.test || chain.test;
        first.validation = !first.test && (first.validation || chain.validation);
      }
      continue;
    }
    seen[chain.id] = {out.size(), r.line};
    out.push_back(std::move(chain));
  }
  if (report) *report = counts;
  return out;
}

// ------------------------------------------------------------ mutants

std::vector<Substitution> parse_mutant(const std::string& text, const std::string& wild_type, int64_t first_position,
                                       const std::string& where) {
  std::vector<Substitution> out;
  std::set<int64_t> seen;
  std::stringstream ss(text);
  std::string one;
  while (std::getline(ss, one, ':')) {
    // <from letter><number><to letter>
    bool ok = one.size() >= 3 && std::isalpha(static_cast<unsigned char>(one.front())) &&
              std::isalpha(static_cast<unsigned char>(one.back()));
    for (size_t i = 1; ok && i + 1 < one.size(); ++i) ok = std::isdigit(static_cast<unsigned char>(one[i])) || (i == 1 && one[i] == '-');
    if (!ok) fail(where, ": mutant '", text, "': '", one, "' is not <wild-type letter><position><new letter> (e.g. H24C)");
    Substitution s;
    s.from = one.front();
    s.to = one.back();
    s.index = std::atoll(one.substr(1, one.size() - 2).c_str()) - first_position;
    const int64_t last = first_position + static_cast<int64_t>(wild_type.size()) - 1;
    if (s.index < 0 || s.index >= static_cast<int64_t>(wild_type.size()))
      fail(where, ": mutant '", text, "': position ", s.index + first_position, " outside the wild type (", first_position,
           "-", last, ")");
    if (wild_type[static_cast<size_t>(s.index)] != s.from)
      fail(where, ": mutant '", text, "': the wild type has ", std::string(1, wild_type[static_cast<size_t>(s.index)]),
           " at position ", s.index + first_position, ", not ", std::string(1, s.from),
           " (wrong wild-type FASTA or numbering offset?)");
    if (!std::strchr(kStandardResidues, s.to))
      fail(where, ": mutant '", text, "': new residue '", std::string(1, s.to), "' is not one of ", kStandardResidues);
    if (!seen.insert(s.index).second) fail(where, ": mutant '", text, "': position ", s.index + first_position, " mutated twice");
    out.push_back(s);
  }
  if (out.empty()) fail(where, ": empty mutant");
  return out;
}

std::string apply_mutations(std::string wild_type, const std::vector<Substitution>& mutations) {
  for (const auto& m : mutations) wild_type[static_cast<size_t>(m.index)] = m.to;
  return wild_type;
}

VariantTable read_variant_csv(const std::filesystem::path& path, const std::string& mutant_column,
                              const std::string& score_column, const std::string& wild_type, int64_t first_position) {
  const auto table = read_csv(path);
  const std::string where = path.string();
  const size_t c_mut = table.column(mutant_column, where), c_score = table.column(score_column, where);
  const bool check_sequence = table.has("mutated_sequence");
  const size_t c_seq = check_sequence ? table.column("mutated_sequence", where) : 0;
  VariantTable out;
  for (const auto& [line, f] : table.rows) {
    const std::string at = where + ":" + std::to_string(line);
    VariantRow row;
    row.line = line;
    row.mutant = f[c_mut];
    row.mutations = parse_mutant(row.mutant, wild_type, first_position, at);
    if (check_sequence && f[c_seq] != apply_mutations(wild_type, row.mutations))
      fail(at, ": mutated_sequence differs from the wild type with '", row.mutant, "' applied");
    bool ok = false;
    row.score = parse_number(f[c_score], ok);
    if (f[c_score].empty() || (ok && std::isnan(row.score))) {
      ++out.rows_without_score;
      continue;
    }
    if (!ok || !std::isfinite(row.score))
      fail(at, ": column '", score_column, "': '", f[c_score], "' is not a number");
    out.rows.push_back(std::move(row));
  }
  if (out.rows.empty()) fail(where, ": no row with a measured '", score_column, "'");
  return out;
}

std::string wild_type_from_variants(const std::filesystem::path& path, const std::string& mutant_column,
                                    int64_t first_position) {
  const auto table = read_csv(path);
  const std::string where = path.string();
  if (!table.has("mutated_sequence"))
    fail(where, ": no wild-type FASTA given and no 'mutated_sequence' column to derive the wild type from");
  if (table.rows.empty()) fail(where, ": no rows");
  const auto& [line, f] = table.rows.front();
  std::string sequence = f[table.column("mutated_sequence", where)];
  // Revert the first row's mutations: parse against the mutated sequence with from/to swapped.
  std::string swapped;
  std::stringstream ss(f[table.column(mutant_column, where)]);
  std::string one;
  while (std::getline(ss, one, ':'))
    swapped += (swapped.empty() ? "" : ":") + (one.size() >= 3 ? one.back() + one.substr(1, one.size() - 2) + one.front() : one);
  return apply_mutations(sequence, parse_mutant(swapped, sequence, first_position, where + ":" + std::to_string(line)));
}

torch::Tensor residue_log_probs(SequenceEncoder& model, const std::string& sequence, bool masked,
                                const std::vector<int64_t>& positions, int64_t batch) {
  torch::NoGradGuard no_grad;
  const auto L = static_cast<int64_t>(sequence.size());
  if (L > max_residues(model))
    fail("variant scoring: the wild type has ", L, " residues, more than the model's limit of ", max_residues(model));
  const auto& tokenizer = model.tokenizer();
  const auto device = model_device(model);
  const auto encoded = tokenizer.batch({sequence});
  ForwardRequest request;
  auto run = [&](const torch::Tensor& ids) {
    const auto out = model.forward(ids.to(device), encoded.mask.repeat({ids.size(0), 1}).to(device), request);
    return torch::log_softmax(out.logits.to(torch::kFloat64).cpu(), -1);  // [B, T, V]
  };
  if (!masked) return run(encoded.ids)[0].slice(0, 1, 1 + L).clone();  // token 0 is <cls>
  auto out = torch::full({L, tokenizer.size()}, std::numeric_limits<double>::quiet_NaN(), torch::kFloat64);
  ProgressBar bar("masked marginals", static_cast<double>(positions.size()), "pos/s");
  for (size_t begin = 0; begin < positions.size(); begin += static_cast<size_t>(batch)) {
    const size_t end = std::min(positions.size(), begin + static_cast<size_t>(batch));
    auto ids = encoded.ids.repeat({static_cast<int64_t>(end - begin), 1});
    for (size_t k = begin; k < end; ++k) ids[static_cast<int64_t>(k - begin)][positions[k] + 1] = tokenizer.mask_id();
    const auto lp = run(ids);
    for (size_t k = begin; k < end; ++k) out[positions[k]] = lp[static_cast<int64_t>(k - begin)][positions[k] + 1];
    bar.advance(static_cast<double>(end - begin));
  }
  return out;
}

double marginal_score(const torch::Tensor& log_probs, const std::vector<Substitution>& mutations, const Tokenizer& tokenizer) {
  const auto lp = log_probs.accessor<double, 2>();
  double score = 0;
  for (const auto& m : mutations)
    score += lp[m.index][tokenizer.id(std::string(1, m.to))] - lp[m.index][tokenizer.id(std::string(1, m.from))];
  return score;
}

// ------------------------------------------------------------ ridge regression

torch::Tensor RidgeModel::predict(const torch::Tensor& x) const {
  return torch::mm((x.to(torch::kFloat64).cpu() - mean) / scale, weight) + bias;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).cpu().contiguous().flatten();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

RidgeModel fit_ridge(const torch::Tensor& x_in, const torch::Tensor& y_in, double lambda) {
  const auto y = (y_in.dim() == 1 ? y_in.unsqueeze(1) : y_in).to(torch::kFloat64).cpu();
  if (x_in.dim() != 2 || y.dim() != 2 || x_in.size(0) != y.size(0) || y.size(0) == 0)
    fail("ridge regression: expected x [N, D] and N targets with N > 0, got ", x_in.sizes(), " and ", y_in.sizes());
  if (!(lambda >= 0)) fail("ridge regression: lambda must be >= 0, got ", lambda);
  const auto x = x_in.to(torch::kFloat64).cpu();
  RidgeModel model;
  std::tie(model.mean, model.scale) = column_mean_std(x);
  model.scale = torch::where(model.scale.gt(1e-12), model.scale, torch::ones_like(model.scale));  // constant columns
  const auto z = (x - model.mean) / model.scale;
  model.bias = y.mean(0);
  // Centred z and y: the intercept is the mean target and drops out of the normal equations.
  const auto gram = torch::mm(z.t(), z) + lambda * torch::eye(z.size(1), torch::kFloat64);
  model.weight = torch::linalg_solve(gram, torch::mm(z.t(), y - model.bias));
  return model;
}

}  // namespace sapling::evaluation
