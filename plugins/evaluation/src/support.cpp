// Contact geometry and precision, the L1 logistic fit, DSSP label reading, data lookup, per-residue probes and frozen-feature extraction.
#include "support.hpp"


#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <sstream>

#include "sapling/contacts.hpp"
#include "sapling/internal/data_registry.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"
#include "sapling/masking.hpp"
#include "sapling/progress.hpp"
#include "sapling/structure_io.hpp"

namespace sapling::evaluation {

// ------------------------------------------------------------ contact geometry

torch::Tensor impute_cb(const torch::Tensor& n, const torch::Tensor& ca, const torch::Tensor& c) {
  const auto b = ca - n;
  const auto cc = c - ca;
  const auto a = torch::cross(b, cc, -1);
  return -0.58273431 * a + 0.56802827 * b - 0.54067466 * cc + ca;
}

ContactTruth contact_truth(const ChainStructure& chain, double threshold) {
  const auto coords = chain.coords.to(torch::kFloat64);
  const auto n = coords.select(1, kN), ca = coords.select(1, kCA), c = coords.select(1, kC);
  ContactTruth truth;
  truth.valid = torch::isfinite(n).all(1) & torch::isfinite(ca).all(1) & torch::isfinite(c).all(1);
  auto cb = impute_cb(n, ca, c);
  cb = torch::where(truth.valid.unsqueeze(1), cb, torch::zeros_like(cb));  // NaN-free for cdist
  const auto distance = torch::cdist(cb, cb);
  truth.contacts = distance.lt(threshold) & truth.valid.unsqueeze(0) & truth.valid.unsqueeze(1);
  return truth;
}

const std::vector<SeparationRange>& contact_ranges() {
  static const std::vector<SeparationRange> ranges{{"short", 6, 11}, {"medium", 12, 23}, {"long", 24, -1}};
  return ranges;
}

torch::Tensor range_pairs(int64_t length, const torch::Tensor& valid, const SeparationRange& range) {
  const auto index = torch::arange(length, torch::kInt64);
  const auto separation = index.unsqueeze(0) - index.unsqueeze(1);  // [i][j] = j - i
  auto pairs = separation.ge(range.min);
  if (range.max >= 0) pairs = pairs & separation.le(range.max);
  const auto v = valid.to(torch::kBool).cpu();
  return pairs & v.unsqueeze(0) & v.unsqueeze(1);
}

double precision_at(const torch::Tensor& scores, const ContactTruth& truth, const SeparationRange& range,
                    int64_t divisor) {
  const int64_t length = scores.size(0);
  const auto pairs = range_pairs(length, truth.valid, range);
  const auto candidate_scores = scores.to(torch::kFloat64).cpu().masked_select(pairs);
  const auto candidate_truth = truth.contacts.cpu().masked_select(pairs);
  const int64_t wanted = std::min<int64_t>(length / divisor, candidate_scores.numel());
  if (wanted <= 0) return std::numeric_limits<double>::quiet_NaN();
  // Stable sort so ties keep row-major pair order: results do not depend on the sort algorithm.
  const auto order = std::get<1>(candidate_scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const auto top = candidate_truth.index_select(0, order.slice(0, 0, wanted));
  return top.to(torch::kFloat64).mean().item<double>();
}

std::vector<std::pair<std::string, double>> contact_precisions(const torch::Tensor& scores, const ContactTruth& truth) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& range : contact_ranges())
    for (const auto& [suffix, divisor] : std::vector<std::pair<std::string, int64_t>>{{"L", 1}, {"L/2", 2}, {"L/5", 5}})
      out.emplace_back(range.name + "_P@" + suffix, precision_at(scores, truth, range, divisor));
  return out;
}

void MeanAccumulator::add(const std::vector<std::pair<std::string, double>>& values) {
  for (const auto& [name, value] : values) {
    auto it = std::find(order_.begin(), order_.end(), name);
    size_t k = static_cast<size_t>(it - order_.begin());
    if (it == order_.end()) {
      order_.push_back(name);
      sums_.push_back(0);
      counts_.push_back(0);
    }
    if (std::isnan(value)) continue;
    sums_[k] += value;
    counts_[k] += 1;
  }
}

std::vector<std::pair<std::string, double>> MeanAccumulator::means() const {
  std::vector<std::pair<std::string, double>> out;
  for (size_t k = 0; k < order_.size(); ++k)
    out.emplace_back(order_[k], counts_[k] ? sums_[k] / static_cast<double>(counts_[k])
                                           : std::numeric_limits<double>::quiet_NaN());
  return out;
}

// ------------------------------------------------------------ L1 logistic regression

std::pair<torch::Tensor, torch::Tensor> column_mean_std(const torch::Tensor& x) {
  const auto mean = x.mean(0);
  return {mean, (x - mean).square().mean(0).sqrt()};
}

torch::Tensor L1LogisticModel::predict(const torch::Tensor& x) const {
  return torch::sigmoid(torch::mv(x.to(torch::kFloat64), weight) + bias).to(torch::kFloat32);
}

L1LogisticModel fit_l1_logistic(const torch::Tensor& x_in, const torch::Tensor& y_in, const L1LogisticOptions& options) {
  if (x_in.dim() != 2 || y_in.dim() != 1 || x_in.size(0) != y_in.size(0) || x_in.size(0) == 0)
    fail("L1 logistic regression: expected x [N, D] and y [N] with N > 0, got ", x_in.sizes(), " and ", y_in.sizes());
  if (!(options.c > 0)) fail("L1 logistic regression: C must be positive, got ", options.c);
  // float64: the problem is small (D ~ hundreds) and precision makes the stopping rule meaningful.
  const auto x = x_in.to(torch::kFloat64).cpu();
  const auto y = y_in.to(torch::kFloat64).cpu();
  const double n = static_cast<double>(x.size(0));
  const int64_t d = x.size(1);
  // Standardise columns so one step size suits every coefficient (attention
  // features differ in scale by orders of magnitude). Constant columns keep scale 1.
  auto [mean, scale] = column_mean_std(x);
  scale = torch::where(scale.gt(1e-12), scale, torch::ones_like(scale));
  const auto z = (x - mean) / scale;
  // Objective / (C n): mean logloss + lambda * sum_j |w_j|, and w_j = v_j / scale_j.
  const double lambda = 1.0 / (options.c * n);
  const auto threshold_per_column = lambda / scale;
  // Lipschitz constant of the mean-logloss gradient in (v, b): 0.25 * largest
  // eigenvalue of [z 1]^T [z 1] / n, which is block diagonal (z is centred).
  const auto gram = torch::mm(z.t(), z) / n;
  const double top_eigenvalue = std::max(1.0, std::get<0>(torch::linalg_eigh(gram)).max().item<double>());
  const double step = 1.0 / (0.25 * top_eigenvalue);

  auto v = torch::zeros({d}, torch::kFloat64);
  double b = std::log((y.mean().item<double>() + 1e-9) / (1 - y.mean().item<double>() + 1e-9));
  auto yv = v.clone();
  double yb = b, momentum = 1;
  L1LogisticModel model;
  for (int64_t it = 1; it <= options.max_iterations; ++it) {
    const auto residual = torch::sigmoid(torch::mv(z, yv) + yb) - y;
    const auto grad_v = torch::mv(z.t(), residual) / n;
    const double grad_b = residual.mean().item<double>();
    auto shifted = yv - step * grad_v;
    const auto thr = step * threshold_per_column;
    auto v_next = torch::sign(shifted) * torch::clamp_min(shifted.abs() - thr, 0);
    const double b_next = yb - step * grad_b;
    double momentum_next = (1 + std::sqrt(1 + 4 * momentum * momentum)) / 2;
    // Adaptive restart (O'Donoghue & Candes): drop momentum when it points uphill.
    const double uphill = torch::dot(yv - v_next, v_next - v).item<double>() + (yb - b_next) * (b_next - b);
    if (uphill > 0) momentum_next = 1, momentum = 1;
    const double change = std::max((v_next - v).abs().max().item<double>(), std::abs(b_next - b));
    yv = v_next + ((momentum - 1) / momentum_next) * (v_next - v);
    yb = b_next + ((momentum - 1) / momentum_next) * (b_next - b);
    v = v_next;
    b = b_next;
    momentum = momentum_next;
    model.iterations = it;
    if (change < options.tolerance) {
      model.converged = true;
      break;
    }
  }
  {
    // Subgradient optimality: grad_j = -threshold_j sign(v_j) where v_j != 0, |grad_j| <= threshold_j elsewhere.
    const auto grad = torch::mv(z.t(), torch::sigmoid(torch::mv(z, v) + b) - y) / n;
    const auto on = (grad + threshold_per_column * torch::sign(v)).abs();
    const auto off = torch::clamp_min(grad.abs() - threshold_per_column, 0);
    model.kkt_violation = (torch::where(v.ne(0), on, off) / threshold_per_column).max().item<double>();
  }
  model.weight = v / scale;
  model.bias = b - torch::dot(model.weight, mean).item<double>();
  return model;
}

// ------------------------------------------------------------ secondary structure

char dssp8_to_dssp3(char state) {
  switch (state) {
    case 'H': case 'G': case 'I': return 'H';
    case 'E': case 'B': return 'E';
    default: return 'C';
  }
}

int64_t q8_index(char state) {
  const char* p = std::strchr(kQ8Classes, state);
  return state != '\0' && p ? p - kQ8Classes : -1;
}

int64_t q3_index(char state) {
  const char* p = std::strchr(kQ3Classes, state);
  return state != '\0' && p ? p - kQ3Classes : -1;
}

namespace {

std::vector<std::string> split_whitespace(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string item;
  while (in >> item) out.push_back(item);
  return out;
}

}  // namespace

std::vector<SecondaryStructureChain> read_secondary_structure_csv(const std::filesystem::path& path) {
  std::istringstream in(read_maybe_gzipped(path));
  std::vector<SecondaryStructureChain> chains;
  std::string line;
  size_t line_no = 0;
  const std::string where = path.string();
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line_no == 1) {
      if (line.rfind("input", 0) != 0)
        fail(where, ":1: expected the header 'input, dssp3, dssp8, disorder, cb513_mask', got '", line.substr(0, 60), "'");
      continue;
    }
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, ',')) fields.push_back(field);
    if (fields.size() != 5) fail(where, ":", line_no, ": expected 5 comma-separated fields, got ", fields.size());
    const auto residues = split_whitespace(fields[0]), s3 = split_whitespace(fields[1]), s8 = split_whitespace(fields[2]),
               disorder = split_whitespace(fields[3]), cb513 = split_whitespace(fields[4]);
    const size_t L = residues.size();
    if (L == 0) fail(where, ":", line_no, ": empty sequence");
    if (s3.size() != L || s8.size() != L || disorder.size() != L || cb513.size() != L)
      fail(where, ":", line_no, ": fields have different lengths (input ", L, ", dssp3 ", s3.size(), ", dssp8 ", s8.size(),
           ", disorder ", disorder.size(), ", cb513_mask ", cb513.size(), ")");
    SecondaryStructureChain chain;
    chain.name = path.filename().string() + ":" + std::to_string(line_no);
    for (size_t i = 0; i < L; ++i) {
      if (residues[i].size() != 1 || s3[i].size() != 1 || s8[i].size() != 1)
        fail(where, ":", line_no, ": residue ", i + 1, ": expected one letter per residue and state");
      chain.sequence.push_back(residues[i][0]);
      const int64_t k3 = q3_index(s3[i][0]), k8 = q8_index(s8[i][0]);
      if (k3 < 0) fail(where, ":", line_no, ": residue ", i + 1, ": unknown 3-state label '", s3[i], "' (expected H, E or C)");
      if (k8 < 0) fail(where, ":", line_no, ": residue ", i + 1, ": unknown 8-state label '", s8[i], "' (expected one of ", kQ8Classes, ")");
      chain.q3.push_back(k3);
      chain.q8.push_back(k8);
      chain.scored.push_back(std::atof(disorder[i].c_str()) > 0.5 && std::atof(cb513[i].c_str()) > 0.5);
    }
    chains.push_back(std::move(chain));
  }
  if (chains.empty()) fail(where, ": no chains");
  return chains;
}

// ------------------------------------------------------------ data and splits

std::filesystem::path task_data_dir() { return sapling::default_data_dir() / "data"; }

std::filesystem::path data_path(const std::filesystem::path& option_value, const std::string& relative,
                                const std::string& option) {
  const auto path = option_value.empty() ? task_data_dir() / relative : option_value;
  if (!std::filesystem::exists(path))
    fail("option '", option, "': ", path.string(), " does not exist",
         option_value.empty() ? " (default data: fetch it with `sapling data fetch NAME --mirror DIR` into $SAPLING_DATA_DIR; "
                                "`sapling data list` names the data sets; or give the option)"
                              : "");
  return path;
}

std::vector<std::filesystem::path> contact_structure_files(const std::filesystem::path& source) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(source)) {
    const auto all = find_structure_files({source});
    for (const auto& f : all)
      if (f.filename().string().find(".chain.") != std::string::npos) files.push_back(f);
    if (files.empty()) files = all;
  } else {
    std::istringstream in(read_file(source));
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      const auto begin = line.find_first_not_of(" \t\r");
      if (begin == std::string::npos || line[begin] == '#') continue;
      const auto end = line.find_last_not_of(" \t\r");
      std::filesystem::path file = line.substr(begin, end - begin + 1);
      if (file.is_relative()) file = source.parent_path() / file;
      if (!std::filesystem::exists(file)) fail(source.string(), ":", line_no, ": ", file.string(), " does not exist");
      files.push_back(file);
    }
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.filename().string() < b.filename().string(); });
  if (files.empty()) fail(source.string(), ": no structure files");
  return files;
}

std::vector<size_t> seeded_permutation(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  // Modulo draw rather than std::uniform_int_distribution, whose algorithm is implementation-defined.
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

ChainStructure read_first_chain(const std::filesystem::path& file) {
  for (auto& chain : read_structure(file)) {
    const auto bb = chain.coords.slice(1, kN, kC + 1);
    if (torch::isfinite(bb).all(2).all(1).any().item<bool>()) return chain;
  }
  fail(file.string(), ": no protein chain with a complete backbone (N, CA, C)");
}

// ------------------------------------------------------------ per-residue probes

void add_probe_options(OptionSchema& schema) {
  schema.add("probe", OptionType::String).default_value(std::string("linear")).one_of({"linear", "mlp"}).doc("probe on each residue's features");
  schema.add("hidden", OptionType::Int).default_value(int64_t{256}).min(1).doc("hidden units of the mlp probe");
  schema.add("epochs", OptionType::Int).default_value(int64_t{30}).min(1).doc("epoch cap");
  schema.add("patience", OptionType::Int).default_value(int64_t{3}).min(1).doc("epochs without validation gain before stopping");
  schema.add("batch_size", OptionType::Int).default_value(int64_t{256}).min(1).doc("residues per step");
  schema.add("learning_rate", OptionType::Float).default_value(1e-3).min(0, true).doc("AdamW learning rate");
  schema.add("weight_decay", OptionType::Float).default_value(1e-2).min(0).doc("AdamW weight decay");
}

ProbeSettings probe_settings(const Options& o) {
  return {o.get_string("probe"),      o.get_int("hidden"),        o.get_int("epochs"),
          o.get_int("patience"),      o.get_int("batch_size"),    o.get_float("learning_rate"),
          o.get_float("weight_decay"), static_cast<uint64_t>(o.get_int("seed"))};
}

namespace {

torch::nn::Sequential make_probe(int64_t dim, int64_t classes, const ProbeSettings& s) {
  if (s.kind == "linear") return torch::nn::Sequential(torch::nn::Linear(dim, classes));
  return torch::nn::Sequential(torch::nn::Linear(dim, s.hidden), torch::nn::ReLU(), torch::nn::Linear(s.hidden, classes));
}

}  // namespace

double accuracy(torch::nn::Sequential& probe, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  return probe->forward(x).argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
}

torch::nn::Sequential train_probe(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& vx,
                                  const torch::Tensor& vy, int64_t classes, const ProbeSettings& s,
                                  double& best_valid) {
  torch::manual_seed(s.seed);
  auto generator = make_generator(s.seed + 1);
  auto probe = make_probe(x.size(1), classes, s);
  torch::optim::AdamW optimizer(probe->parameters(), torch::optim::AdamWOptions(s.learning_rate).weight_decay(s.weight_decay));
  best_valid = -1;
  std::vector<torch::Tensor> best;
  int64_t since_best = 0;
  torch::AutoGradMode grad(true);
  for (int64_t epoch = 0; epoch < s.epochs && since_best < s.patience; ++epoch) {
    const auto order = torch::randperm(x.size(0), generator, torch::kInt64);
    for (int64_t start = 0; start < x.size(0); start += s.batch_size) {
      const auto pick = order.slice(0, start, std::min(start + s.batch_size, x.size(0)));
      const auto loss = torch::cross_entropy_loss(probe->forward(x.index({pick})), y.index({pick}));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
    const double valid = accuracy(probe, vx, vy);
    if (valid > best_valid) {
      best_valid = valid;
      best.clear();
      for (const auto& p : probe->parameters()) best.push_back(p.detach().clone());
      since_best = 0;
    } else {
      ++since_best;
    }
  }
  torch::NoGradGuard no_grad;
  auto params = probe->parameters();
  for (size_t k = 0; k < params.size(); ++k) params[k].copy_(best[k]);
  return probe;
}

// ------------------------------------------------------------ frozen features

torch::Device model_device(SequenceEncoder& model) {
  for (const auto& p : model.parameters()) return p.device();
  return torch::kCPU;
}

int64_t max_residues(const SequenceEncoder& model) { return model.pretrained_tokens() - 2; }

std::vector<torch::Tensor> residue_features(SequenceEncoder& model, const std::vector<std::string>& sequences,
                                            int64_t layer, int64_t tokens_per_batch, const std::string& progress) {
  torch::NoGradGuard no_grad;
  const auto device = model_device(model);
  const int64_t limit = max_residues(model);
  struct Piece {
    size_t sequence;
    std::string text;
  };
  std::vector<Piece> pieces;
  for (size_t s = 0; s < sequences.size(); ++s)
    for (size_t start = 0; start < std::max<size_t>(sequences[s].size(), 1); start += static_cast<size_t>(limit))
      pieces.push_back({s, sequences[s].substr(start, static_cast<size_t>(limit))});
  std::vector<size_t> order(pieces.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return pieces[a].text.size() < pieces[b].text.size(); });
  std::vector<torch::Tensor> piece_features(pieces.size());
  ForwardRequest request;
  request.hidden_states = true;
  request.logits = false;
  double total = 0;
  for (const auto& p : pieces) total += static_cast<double>(p.text.size());
  std::optional<ProgressBar> bar;
  if (!progress.empty()) bar.emplace(progress, total, "res/s");
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    // Sorted by length, so the batch's padded size is (count) x (last piece + 2).
    while (end < order.size() &&
           static_cast<int64_t>(end - begin + 1) * static_cast<int64_t>(pieces[order[end]].text.size() + 2) <=
               tokens_per_batch)
      ++end;
    std::vector<std::string> texts;
    for (size_t k = begin; k < end; ++k) texts.push_back(pieces[order[k]].text);
    const auto batch = model.tokenizer().batch(texts);
    const auto out = model.forward(batch.ids.to(device), batch.mask.to(device), request);
    const auto rep = model.representation(out, layer).to(torch::kFloat32).cpu();
    for (size_t k = begin; k < end; ++k) {
      const int64_t length = static_cast<int64_t>(pieces[order[k]].text.size());
      piece_features[order[k]] = rep[static_cast<int64_t>(k - begin)].slice(0, 1, 1 + length).clone();
      if (bar) bar->advance(static_cast<double>(length));
    }
    begin = end;
  }
  std::vector<std::vector<torch::Tensor>> per_sequence(sequences.size());
  for (size_t p = 0; p < pieces.size(); ++p) per_sequence[pieces[p].sequence].push_back(piece_features[p]);
  std::vector<torch::Tensor> out;
  for (auto& parts : per_sequence) out.push_back(torch::cat(parts, 0));
  return out;
}

torch::Tensor attention_features(SequenceEncoder& model, const std::string& sequence) {
  torch::NoGradGuard no_grad;
  if (static_cast<int64_t>(sequence.size()) > max_residues(model))
    fail("attention features: sequence of ", sequence.size(), " residues is longer than the model's limit of ",
         max_residues(model));
  const auto device = model_device(model);
  const auto batch = model.tokenizer().batch({sequence});
  ForwardRequest request;
  request.attentions = true;
  request.logits = false;
  const auto ids = batch.ids.to(device), mask = batch.mask.to(device);
  const auto out = model.forward(ids, mask, request);
  return attention_contact_features(out.attentions, ids, mask, model.tokenizer().eos_id())[0].to(torch::kFloat32).cpu();
}

}  // namespace sapling::evaluation
