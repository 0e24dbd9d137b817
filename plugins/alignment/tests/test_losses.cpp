// The alignment losses against hand computations in double precision: values, ignored positions, gradients, temperature.
#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>
#include <vector>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "test_support.hpp"

namespace {

using sapling::AlignmentLossRegistry;
using Vec = std::vector<double>;

std::shared_ptr<sapling::AlignmentLoss> make_loss(const std::string& name,
                                                  const std::vector<std::pair<std::string, sapling::OptionValue>>& set) {
  sapling::test::load_build_plugins();
  auto& registry = AlignmentLossRegistry::instance();
  auto options = sapling::Options::defaults(registry.find(name).schema);
  for (const auto& [key, value] : set) options.set(key, value);
  return registry.create(name, options, sapling::LossContext{});  // no run: every size from the options
}

torch::Tensor param(const sapling::AlignmentLoss& loss, const std::string& name) {
  for (const auto& p : loss.named_parameters())
    if (p.key() == name) return p.value();
  FAIL("no parameter " << name);
  return {};
}

Vec row(const torch::Tensor& t) {  // a 1-D tensor as doubles
  auto c = t.detach().to(torch::kFloat64).contiguous();
  return Vec(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

Vec normalized(Vec v) {
  double n = 0;
  for (double x : v) n += x * x;
  n = std::max(std::sqrt(n), 1e-12);
  for (double& x : v) x /= n;
  return v;
}

Vec affine(const torch::Tensor& weight, const torch::Tensor& bias, const Vec& x) {  // W x + b
  Vec out(static_cast<size_t>(weight.size(0)));
  for (int64_t o = 0; o < weight.size(0); ++o) {
    double s = bias.defined() ? bias[o].item<double>() : 0.0;
    for (int64_t i = 0; i < weight.size(1); ++i) s += weight[o][i].item<double>() * x[static_cast<size_t>(i)];
    out[static_cast<size_t>(o)] = s;
  }
  return out;
}

double cross_entropy(const Vec& logits, size_t target) {
  double m = logits[0];
  for (double x : logits) m = std::max(m, x);
  double s = 0;
  for (double x : logits) s += std::exp(x - m);
  return m + std::log(s) - logits[target];
}

double max_abs_diff(const torch::Tensor& got, const Vec& want) {
  REQUIRE(got.numel() == static_cast<int64_t>(want.size()));
  double d = 0;
  const Vec g = row(got);
  for (size_t i = 0; i < want.size(); ++i) d = std::max(d, std::abs(g[i] - want[i]));
  return d;
}

// Two proteins, T = 5: protein 0 = <cls> r r r <eos>, protein 1 = <cls> r r <eos> <pad>.
torch::Tensor residue_mask() {
  return torch::tensor({0, 1, 1, 1, 0, 0, 1, 1, 0, 0}, torch::kBool).reshape({2, 5});
}

}  // namespace

TEST_CASE("the alignment plugin registers three losses and three selectors", "[alignment]") {
  sapling::test::load_build_plugins();
  for (const char* name : {"mlm", "structure_token", "residue_contrastive"}) {
    REQUIRE(AlignmentLossRegistry::instance().contains(name));
    CHECK(AlignmentLossRegistry::instance().find(name).plugin == "alignment");
  }
  for (const char* name : {"none", "own_loss", "excess_loss"})
    CHECK(sapling::ResidueSelectorRegistry::instance().contains(name));
  CHECK_FALSE(make_loss("mlm", {})->selectable());
  CHECK(make_loss("structure_token", {{"input_dim", int64_t{4}}})->selectable());
  CHECK(make_loss("residue_contrastive", {{"plm_dim", int64_t{4}}, {"pgnn_dim", int64_t{6}}})->selectable());
}

TEST_CASE("mlm loss: cross-entropy at labelled positions only", "[alignment][mlm]") {
  torch::manual_seed(1);
  sapling::EncoderOutput out;
  out.logits = torch::randn({2, 5, 7}) * 3;
  auto labels = torch::full({2, 5}, int64_t{-100});
  labels[0][2] = 4;
  labels[1][1] = 0;
  labels[1][2] = 6;
  sapling::LossInputs in;
  in.plm = &out;
  in.mlm_labels = labels;
  auto loss = make_loss("mlm", {});
  const auto terms = loss->compute(in);
  CHECK(terms.index.equal(torch::tensor({2, 6, 7}, torch::kInt64)));
  REQUIRE(terms.per_residue.count("mlm"));
  Vec want = {cross_entropy(row(out.logits[0][2]), 4), cross_entropy(row(out.logits[1][1]), 0),
              cross_entropy(row(out.logits[1][2]), 6)};
  const double diff = max_abs_diff(terms.per_residue.at("mlm"), want);
  std::cout << "mlm per-residue CE max |diff| vs hand = " << diff << "\n";
  CHECK(diff < 1e-5);

  out.logits = out.logits.clone().requires_grad_(true);
  loss->compute(in).per_residue.at("mlm").sum().backward();
  CHECK(out.logits.grad()[0][2].abs().sum().item<double>() > 0);
  CHECK(out.logits.grad()[0][1].abs().sum().item<double>() == 0);  // unlabelled: no gradient

  labels[0][3] = 7;  // outside the 7 classes
  CHECK_THROWS_AS(loss->compute(in), sapling::Error);
  sapling::EncoderOutput no_logits;
  in.plm = &no_logits;
  CHECK_THROWS_WITH(loss->compute(in), Catch::Contains("no logits"));
}

TEST_CASE("structure_token loss: MLP on normalised states at every real residue", "[alignment][structure_token]") {
  torch::manual_seed(2);
  const auto vocab = sapling::StructureVocabulary::esm_like(20);  // the default head: 3Di's 20 states, 26 ids
  auto loss = make_loss("structure_token", {{"input_dim", int64_t{3}}});
  sapling::EncoderOutput out;
  out.last_hidden = torch::randn({2, 5, 3}) * 4;
  auto targets = torch::full({2, 5}, int64_t{-100});
  targets[0][0] = vocab.cls;             // <cls> at BOS: not a residue anyway
  targets[0][1] = vocab.state_id(3);
  targets[0][2] = -100;                   // unknown state: ignored
  targets[0][3] = vocab.state_id(19);
  targets[1][1] = vocab.eos;             // an ignore_ids id at a residue: ignored
  targets[1][2] = vocab.mask;             // 25, the last class
  sapling::LossInputs in;
  in.plm = &out;
  in.residue_mask = residue_mask();
  in.structure_tokens = targets;
  const auto terms = loss->compute(in);
  CHECK(terms.index.equal(torch::tensor({1, 3, 7}, torch::kInt64)));

  const auto w1 = param(*loss, "hidden_layer.weight"), b1 = param(*loss, "hidden_layer.bias");
  const auto w2 = param(*loss, "output_layer.weight"), b2 = param(*loss, "output_layer.bias");
  CHECK(w1.sizes() == torch::IntArrayRef({3, 3}));
  CHECK(w2.sizes() == torch::IntArrayRef({26, 3}));
  Vec want;
  for (auto [b, t] : std::vector<std::pair<int, int>>{{0, 1}, {0, 3}, {1, 2}}) {
    Vec hidden = affine(w1, b1, normalized(row(out.last_hidden[b][t])));
    for (double& x : hidden) x = std::max(0.0, x);
    want.push_back(cross_entropy(affine(w2, b2, hidden), static_cast<size_t>(targets[b][t].item<int64_t>())));
  }
  const double diff = max_abs_diff(terms.per_residue.at("structure_token"), want);
  std::cout << "structure_token per-residue CE max |diff| vs hand = " << diff << "\n";
  CHECK(diff < 1e-5);

  SECTION("gradients reach the head and the pLM states") {
    out.last_hidden = out.last_hidden.clone().requires_grad_(true);
    loss->compute(in).per_residue.at("structure_token").sum().backward();
    for (const char* name : {"hidden_layer.weight", "hidden_layer.bias", "output_layer.weight", "output_layer.bias"}) {
      INFO(name);
      CHECK(param(*loss, name).grad().abs().sum().item<double>() > 0);
    }
    CHECK(out.last_hidden.grad()[0][1].abs().sum().item<double>() > 0);
    CHECK(out.last_hidden.grad()[0][2].abs().sum().item<double>() == 0);  // ignored residue
  }
  SECTION("bad inputs fail clearly") {
    targets[0][1] = 26;
    CHECK_THROWS_WITH(loss->compute(in), Catch::Contains("outside the 26 classes"));
    out.last_hidden = torch::randn({2, 5, 4});
    CHECK_THROWS_WITH(loss->compute(in), Catch::Contains("input_dim is 3"));
  }
}

namespace {

struct ContrastiveCase {
  sapling::EncoderOutput out;
  sapling::LossInputs in;
};

// Protein 1's second residue has no pGNN embedding: 4 residues enter the matrix.
ContrastiveCase contrastive_case() {
  torch::manual_seed(3);
  ContrastiveCase c;
  c.out.last_hidden = torch::randn({2, 5, 4}) * 2;
  c.in.plm = &c.out;
  c.in.residue_mask = residue_mask();
  c.in.pgnn_embeddings = torch::randn({2, 5, 3});
  c.in.pgnn_embeddings[1][2].zero_();  // "zeros where unknown"
  return c;
}

// Both directions by hand from the module's own parameters, at logit scale `scale`.
std::pair<Vec, Vec> contrastive_by_hand(const sapling::AlignmentLoss& loss, const ContrastiveCase& c, double scale) {
  const auto ws = param(loss, "seq_projection.weight"), bs = param(loss, "seq_projection.bias");
  const auto wg = param(loss, "struct_projection.weight"), bg = param(loss, "struct_projection.bias");
  std::vector<Vec> zs, zg;
  for (auto [b, t] : std::vector<std::pair<int, int>>{{0, 1}, {0, 2}, {0, 3}, {1, 1}}) {
    zs.push_back(normalized(affine(ws, bs, normalized(row(c.out.last_hidden[b][t])))));
    zg.push_back(normalized(affine(wg, bg, row(c.in.pgnn_embeddings[b][t]))));
  }
  const size_t n = zs.size();
  std::vector<Vec> logits(n, Vec(n));
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      double dot = 0;
      for (size_t k = 0; k < zs[i].size(); ++k) dot += zs[i][k] * zg[j][k];
      logits[i][j] = scale * dot;
    }
  Vec seq_to_struct, struct_to_seq;
  for (size_t i = 0; i < n; ++i) {
    seq_to_struct.push_back(cross_entropy(logits[i], i));
    Vec column(n);
    for (size_t j = 0; j < n; ++j) column[j] = logits[j][i];
    struct_to_seq.push_back(cross_entropy(column, i));
  }
  return {seq_to_struct, struct_to_seq};
}

}  // namespace

TEST_CASE("residue_contrastive: one matrix over the batch's residues, both directions", "[alignment][contrastive]") {
  auto c = contrastive_case();
  auto loss = make_loss("residue_contrastive", {{"plm_dim", int64_t{4}}, {"pgnn_dim", int64_t{3}}});
  // Projection size min(4, 3) = 3; t starts at log(1/0.07).
  CHECK(param(*loss, "seq_projection.weight").sizes() == torch::IntArrayRef({3, 4}));
  CHECK(param(*loss, "struct_projection.weight").sizes() == torch::IntArrayRef({3, 3}));
  CHECK(param(*loss, "logit_scale").item<double>() == Approx(std::log(1 / 0.07)).epsilon(1e-6));

  const auto terms = loss->compute(c.in);
  CHECK(terms.index.equal(torch::tensor({1, 2, 3, 6}, torch::kInt64)));  // the residue without pGNN row is out
  const auto [s2g, g2s] = contrastive_by_hand(*loss, c, 1 / 0.07);
  const double d1 = max_abs_diff(terms.per_residue.at("seq_to_struct"), s2g);
  const double d2 = max_abs_diff(terms.per_residue.at("struct_to_seq"), g2s);
  std::cout << "contrastive 4x4 CE max |diff| vs hand: seq_to_struct " << d1 << ", struct_to_seq " << d2 << "\n";
  CHECK(d1 < 1e-4);
  CHECK(d2 < 1e-4);
  CHECK(max_abs_diff(terms.per_residue.at("seq_to_struct"), g2s) > 1e-3);  // the directions really differ

  SECTION("gradients reach both projections, the temperature and the pLM states") {
    c.out.last_hidden = c.out.last_hidden.clone().requires_grad_(true);
    const auto t = loss->compute(c.in);
    (t.per_residue.at("seq_to_struct").mean() + t.per_residue.at("struct_to_seq").mean()).backward();
    for (const char* name : {"seq_projection.weight", "seq_projection.bias", "struct_projection.weight",
                             "struct_projection.bias", "logit_scale"}) {
      INFO(name);
      CHECK(param(*loss, name).grad().abs().sum().item<double>() > 0);
    }
    CHECK(c.out.last_hidden.grad()[1][1].abs().sum().item<double>() > 0);
    CHECK(c.out.last_hidden.grad()[1][2].abs().sum().item<double>() == 0);  // excluded (no pGNN embedding)
  }
  SECTION("exp(t) is clamped below at 0.01, with no gradient to t there") {
    {
      torch::NoGradGuard no_grad;
      param(*loss, "logit_scale").fill_(std::log(0.001));
    }
    const auto t = loss->compute(c.in);
    const auto [want, unused] = contrastive_by_hand(*loss, c, 0.01);
    const double d = max_abs_diff(t.per_residue.at("seq_to_struct"), want);
    std::cout << "contrastive at clamped scale 0.01: max |diff| " << d << "\n";
    CHECK(d < 1e-5);
    t.per_residue.at("seq_to_struct").sum().backward();
    CHECK(param(*loss, "logit_scale").grad().item<double>() == 0.0);
  }
  SECTION("no upper clip: a scale of 200 is used as is") {
    {
      torch::NoGradGuard no_grad;
      param(*loss, "logit_scale").fill_(std::log(200.0));
    }
    const auto [want, unused] = contrastive_by_hand(*loss, c, 200.0);
    const double d = max_abs_diff(loss->compute(c.in).per_residue.at("seq_to_struct"), want);
    std::cout << "contrastive at scale 200: max |diff| " << d << "\n";
    CHECK(d < 1e-3);
  }
  SECTION("options: projection size, fixed temperature, a higher floor") {
    auto fixed = make_loss("residue_contrastive", {{"plm_dim", int64_t{4}},
                                                   {"pgnn_dim", int64_t{3}},
                                                   {"projection_dim", int64_t{2}},
                                                   {"initial_temperature", 0.5},
                                                   {"min_logit_scale", 5.0},
                                                   {"learnable_temperature", false}});
    CHECK(param(*fixed, "seq_projection.weight").sizes() == torch::IntArrayRef({2, 4}));
    CHECK_FALSE(param(*fixed, "logit_scale").requires_grad());
    const auto [want, unused] = contrastive_by_hand(*fixed, c, 5.0);  // exp(log 2) = 2 < 5
    CHECK(max_abs_diff(fixed->compute(c.in).per_residue.at("seq_to_struct"), want) < 1e-5);
  }
  SECTION("a row with any non-zero value enters; wrong sizes fail") {
    c.in.pgnn_embeddings[1][2][1] = 1e-3;
    CHECK(loss->compute(c.in).index.equal(torch::tensor({1, 2, 3, 6, 7}, torch::kInt64)));
    c.in.pgnn_embeddings = torch::randn({2, 5, 5});
    CHECK_THROWS_WITH(loss->compute(c.in), Catch::Contains("pgnn_dim"));
  }
  SECTION("an empty batch gives empty vectors") {
    c.in.residue_mask = torch::zeros({2, 5}, torch::kBool);
    const auto t = loss->compute(c.in);
    CHECK(t.per_residue.at("seq_to_struct").numel() == 0);
    CHECK(t.per_residue.at("struct_to_seq").numel() == 0);
  }
}

TEST_CASE("loss factories size their heads from the run's LossContext", "[alignment][context]") {
  sapling::test::load_build_plugins();
  auto& registry = AlignmentLossRegistry::instance();
  sapling::LossContext context;
  context.model_width = 5;
  context.structure_encoder_width = 7;
  context.structure_vocabulary = sapling::StructureVocabulary::esm_like(64);  // a 64-code tokenizer: 70 ids
  const auto defaults = [&](const std::string& name) { return sapling::Options::defaults(registry.find(name).schema); };

  auto token = registry.create("structure_token", defaults("structure_token"), context);
  CHECK(param(*token, "hidden_layer.weight").sizes() == torch::IntArrayRef({5, 5}));
  CHECK(param(*token, "output_layer.weight").sizes() == torch::IntArrayRef({70, 5}));
  auto contrastive = registry.create("residue_contrastive", defaults("residue_contrastive"), context);
  CHECK(param(*contrastive, "seq_projection.weight").sizes() == torch::IntArrayRef({5, 5}));
  CHECK(param(*contrastive, "struct_projection.weight").sizes() == torch::IntArrayRef({5, 7}));

  // A recipe's explicit size wins where the data does not fix it; one contradicting the data's tokenizer is refused.
  auto options = defaults("structure_token");
  options.set("input_dim", int64_t{3});
  CHECK(param(*registry.create("structure_token", options, context), "hidden_layer.weight").sizes() ==
        torch::IntArrayRef({3, 3}));
  options.set("num_classes", int64_t{26});
  CHECK_THROWS_WITH(registry.create("structure_token", options, context),
                    Catch::Contains("num_classes = 26") && Catch::Contains("64 states") && Catch::Contains("set 70"));
  options.set("num_classes", int64_t{70});
  CHECK_NOTHROW(registry.create("structure_token", options, context));
  // Without a pGNN in the data the contrastive loss says what is missing.
  context.structure_encoder_width = 0;
  CHECK_THROWS_WITH(registry.create("residue_contrastive", defaults("residue_contrastive"), context),
                    Catch::Contains("pgnn_dim must be set"));
}
