// Evaluation metrics against hand computations: contact precision, APC, CB imputation, DSSP mapping, the L1 logistic fit.
#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>

#include "sapling/contacts.hpp"
#include "sapling/error.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/files.hpp"
#include "sapling/structure_io.hpp"
#include "support.hpp"
#include "test_support.hpp"

using namespace sapling;
using namespace sapling::evaluation;

namespace {

// A 10-residue case for the short range (separation 6-11): its pairs are
// (0,6) (1,7) (2,8) (3,9) (0,7) (1,8) (2,9) (0,8) (1,9) (0,9) -> 10 pairs.
struct TenResidues {
  torch::Tensor scores = torch::zeros({10, 10}, torch::kFloat64);
  ContactTruth truth{torch::zeros({10, 10}, torch::kBool), torch::ones({10}, torch::kBool)};
  TenResidues() {
    // Background scores 0.10 .. 0.15, below the hand-placed ones.
    const std::vector<std::pair<int, int>> rest{{3, 9}, {0, 7}, {1, 8}, {2, 9}, {0, 8}, {1, 9}};
    for (size_t k = 0; k < rest.size(); ++k) scores[rest[k].first][rest[k].second] = 0.10 + 0.01 * static_cast<double>(k);
    scores[3][9] = 0.05;  // a true contact ranked last
    scores[0][6] = 0.9;   // contact
    scores[1][7] = 0.8;   // not a contact
    scores[2][8] = 0.7;   // contact
    scores[0][9] = 0.6;   // not a contact
    scores[0][3] = 0.99;  // contact at separation 3: outside every range, never counted
    for (auto [i, j] : std::vector<std::pair<int, int>>{{0, 6}, {2, 8}, {3, 9}, {0, 3}}) truth.contacts[i][j] = true;
    truth.contacts = truth.contacts | truth.contacts.t();
  }
};

const SeparationRange& short_range() { return contact_ranges()[0]; }

}  // namespace

TEST_CASE("precision at L/k on a 10-residue case computed by hand", "[evaluation][metrics]") {
  TenResidues c;
  // L/5 = 2: top two are (0,6) contact, (1,7) not -> 1/2.
  CHECK(precision_at(c.scores, c.truth, short_range(), 5) == Approx(0.5));
  // L/2 = 5: (0,6) (1,7) (2,8) (0,9) and the best background pair (1,9) at 0.15 -> 2 contacts / 5.
  CHECK(precision_at(c.scores, c.truth, short_range(), 2) == Approx(0.4));
  // L = 10: all ten short pairs, contacts (0,6) (2,8) (3,9) -> 3/10 ((0,3) is separation 3).
  CHECK(precision_at(c.scores, c.truth, short_range(), 1) == Approx(0.3));
  // Medium (12-23) and long (>= 24) have no pair in 10 residues: NaN, skipped when averaging.
  CHECK(std::isnan(precision_at(c.scores, c.truth, contact_ranges()[1], 5)));
  CHECK(std::isnan(precision_at(c.scores, c.truth, contact_ranges()[2], 1)));

  // Residue 7 without backbone: (0,7) and (1,7) leave; 8 pairs remain.
  c.truth.valid[7] = false;
  // L/5 = 2: (0,6) and (2,8), both contacts -> 1.
  CHECK(precision_at(c.scores, c.truth, short_range(), 5) == Approx(1.0));
  // L = 10 but only 8 pairs: all of them, 3 contacts -> 3/8.
  CHECK(precision_at(c.scores, c.truth, short_range(), 1) == Approx(0.375));

  const auto all = contact_precisions(c.scores, c.truth);
  REQUIRE(all.size() == 9);
  CHECK(all[0].first == "short_P@L");
  CHECK(all[2].first == "short_P@L/5");
  CHECK(all[8].first == "long_P@L/5");
  CHECK(all[2].second == Approx(1.0));

  MeanAccumulator mean;
  mean.add({{"a", 1.0}, {"b", std::nan("")}});
  mean.add({{"a", 0.0}, {"b", 0.25}});
  const auto m = mean.means();
  CHECK(m[0].first == "a");
  CHECK(m[0].second == Approx(0.5));
  CHECK(m[1].second == Approx(0.25));  // the NaN of the first protein is skipped
}

TEST_CASE("APC and symmetrisation on a 3x3 matrix", "[evaluation][metrics]") {
  const auto x = torch::tensor({1., 2., 3., 4., 5., 6., 7., 8., 9.}, torch::kFloat64).view({3, 3});
  // Row sums 6 15 24, column sums 12 15 18, total 45; APC = x - r_i c_j / 45:
  // [1 - 72/45, 2 - 90/45, 3 - 108/45; 4 - 180/45, 5 - 225/45, 6 - 270/45; 7 - 288/45, 8 - 360/45, 9 - 432/45]
  const auto expected = torch::tensor({-0.6, 0., 0.6, 0., 0., 0., 0.6, 0., -0.6}, torch::kFloat64).view({3, 3});
  const auto diff = (average_product_correct(x) - expected).abs().max().item<double>();
  std::cout << "APC 3x3 max |diff| = " << diff << "\n";
  CHECK(diff < 1e-12);
  const auto sym = symmetrize(x);
  CHECK(sym[0][1].item<double>() == 6.0);  // 2 + 4
  CHECK(sym[2][0].item<double>() == 10.0);  // 7 + 3
}

TEST_CASE("imputed CB matches the real CB atoms of a PSICOV structure", "[evaluation][metrics]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto file = sapling::test::data_path("psicov") / "1a3a.chain.pdb.gz";
  REQUIRE(std::filesystem::exists(file));
  const auto chain = read_first_chain(file);
  const auto coords = chain.coords.to(torch::kFloat64);
  const auto cb = impute_cb(coords.select(1, kN), coords.select(1, kCA), coords.select(1, kC));
  const auto real = coords.select(1, kCB);
  const auto has = torch::isfinite(real).all(1) & torch::isfinite(cb).all(1);
  const auto distance = (cb - real).norm(2, 1).masked_select(has);
  const double mean = distance.mean().item<double>(), worst = distance.max().item<double>();
  std::cout << "CB imputation on 1a3a (" << distance.numel() << " residues with a CB): mean " << mean << " A, max "
            << worst << " A\n";
  REQUIRE(distance.numel() > 100);
  CHECK(mean < 0.10);
  CHECK(worst < 0.35);
  // Glycines get a CB too (the ESM protocol imputes every residue).
  CHECK(torch::isfinite(cb).all(1).sum().item<int64_t>() == chain.length());
  // Missing backbone gives NaN, not a made-up position.
  auto broken = coords.select(1, kN).clone();
  broken[0][0] = std::nan("");
  CHECK(torch::isnan(impute_cb(broken, coords.select(1, kCA), coords.select(1, kC))[0]).all().item<bool>());
}

TEST_CASE("contact maps from a structure: symmetric, CB-CB < 8 A", "[evaluation][metrics]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto chain = read_first_chain(sapling::test::data_path("psicov") / "1a3a.chain.pdb.gz");
  const auto truth = contact_truth(chain, 8.0);
  CHECK(truth.contacts.equal(truth.contacts.t()));
  CHECK(truth.valid.all().item<bool>());
  // Neighbours i, i+1 are always closer than 8 A (CB-CB about 4.5-6.5 A).
  CHECK(torch::diagonal(truth.contacts, 1).all().item<bool>());
  const double long_rate = truth.contacts.masked_select(range_pairs(chain.length(), truth.valid, contact_ranges()[2]))
                               .to(torch::kFloat64).mean().item<double>();
  std::cout << "1a3a: " << chain.length() << " residues, long-range contact rate " << long_rate << "\n";
  CHECK(long_rate > 0.005);
  CHECK(long_rate < 0.1);
}

TEST_CASE("DSSP 8 -> 3 states and the secondary-structure CSV", "[evaluation][metrics]") {
  SAPLING_REQUIRE_DATA("secondary_structure");
  CHECK(dssp8_to_dssp3('H') == 'H');
  CHECK(dssp8_to_dssp3('G') == 'H');
  CHECK(dssp8_to_dssp3('I') == 'H');
  CHECK(dssp8_to_dssp3('E') == 'E');
  CHECK(dssp8_to_dssp3('B') == 'E');
  CHECK(dssp8_to_dssp3('T') == 'C');
  CHECK(dssp8_to_dssp3('S') == 'C');
  CHECK(dssp8_to_dssp3('C') == 'C');
  CHECK(q8_index('H') == 0);
  CHECK(q8_index('C') == 7);
  CHECK(q8_index('X') == -1);
  CHECK(q3_index('E') == 1);
  CHECK(q3_index('\0') == -1);

  // The files' own 3-state column is the standard reduction of their 8-state column.
  for (const char* name : {"cb513.csv.gz", "ts115.csv.gz"}) {
    const auto chains = read_secondary_structure_csv(sapling::test::data_path("secondary_structure") / name);
    int64_t residues = 0, scored = 0, mismatched = 0;
    for (const auto& c : chains)
      for (size_t i = 0; i < c.sequence.size(); ++i) {
        ++residues;
        scored += c.scored[i];
        mismatched += kQ3Classes[c.q3[i]] != dssp8_to_dssp3(kQ8Classes[c.q8[i]]);
      }
    std::cout << name << ": " << chains.size() << " chains, " << residues << " residues, " << scored << " scored\n";
    CHECK(mismatched == 0);
    CHECK(chains.size() == (std::string(name) == "cb513.csv.gz" ? 511u : 115u));
  }

  const auto dir = test::temp_dir("ss-csv");
  write_file_atomic(dir / "bad.csv", "input, dssp3, dssp8, disorder, cb513_mask\nA G,C C,C C,1 1,1 1\nA G,C,C C,1 1,1 1\n");
  try {
    read_secondary_structure_csv(dir / "bad.csv");
    FAIL("expected an error");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("bad.csv:3") != std::string::npos);
  }
  write_file_atomic(dir / "bad2.csv", "input, dssp3, dssp8, disorder, cb513_mask\nA G,C X,C C,1 1,1 1\n");
  CHECK_THROWS_WITH(read_secondary_structure_csv(dir / "bad2.csv"), Catch::Contains("bad2.csv:2") && Catch::Contains("'X'"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("L1 logistic regression: optimality conditions and recovery of a sparse model", "[evaluation][metrics]") {
  torch::manual_seed(7);
  const int64_t n = 20000;
  // Columns on very different scales (as attention features are); true weights on the original scale.
  const auto scales = torch::tensor({1.0, 0.01, 30.0, 1.0, 0.1, 5.0}, torch::kFloat64);
  const auto x = torch::randn({n, 6}, torch::kFloat64) * scales;
  const auto w_true = torch::tensor({1.5, -200.0, 0.0, 0.0, 0.0, 0.4}, torch::kFloat64);
  const auto y = torch::bernoulli(torch::sigmoid(torch::mv(x, w_true) - 0.5));
  L1LogisticOptions options;
  options.c = 0.05;
  options.tolerance = 1e-9;
  options.max_iterations = 20000;
  const auto fit = fit_l1_logistic(x.to(torch::kFloat32), y, options);
  std::cout << "L1 logistic: " << fit.iterations << " iterations, converged " << fit.converged << ", w = "
            << fit.weight << "\n  bias " << fit.bias << "\n";
  REQUIRE(fit.converged);
  // KKT of  mean logloss + lambda ||w||_1, lambda = 1 / (C n): gradient_j = -lambda sign(w_j) where w_j != 0,
  // |gradient_j| <= lambda where w_j == 0; intercept gradient 0.
  const double lambda = 1.0 / (options.c * static_cast<double>(n));
  const auto xf = x.to(torch::kFloat32).to(torch::kFloat64);
  const auto residual = torch::sigmoid(torch::mv(xf, fit.weight) + fit.bias) - y;
  const auto grad = torch::mv(xf.t(), residual) / static_cast<double>(n);
  double worst = 0;
  for (int64_t j = 0; j < 6; ++j) {
    const double w = fit.weight[j].item<double>(), g = grad[j].item<double>();
    const double violation = w != 0 ? std::abs(g + lambda * (w > 0 ? 1 : -1)) : std::max(0.0, std::abs(g) - lambda);
    worst = std::max(worst, violation / lambda);
  }
  std::cout << "  KKT worst violation / lambda = " << worst << ", intercept gradient " << residual.mean().item<double>() << "\n";
  CHECK(worst < 1e-3);
  CHECK(fit.kkt_violation == Approx(worst).margin(1e-3));  // the fit's own report agrees
  CHECK(std::abs(residual.mean().item<double>()) < 1e-6);
  // With C = 0.05 the penalty is active: unstandardised L1 (scikit-learn's convention) shrinks the weight of
  // the small-scale column most, so the small ones go exactly to zero.
  CHECK(fit.weight.eq(0).sum().item<int64_t>() >= 1);
  CHECK(std::abs(fit.weight[1].item<double>()) < 200.0);

  // Weak penalty (C = 1e4): the maximum-likelihood weights, within 10% of the truth.
  options.c = 1e4;
  const auto mle = fit_l1_logistic(x.to(torch::kFloat32), y, options);
  std::cout << "  C = 1e4: " << mle.iterations << " iterations, w = " << mle.weight << "\n  bias " << mle.bias << "\n";
  REQUIRE(mle.converged);
  CHECK(mle.weight[0].item<double>() == Approx(1.5).epsilon(0.1));
  CHECK(mle.weight[1].item<double>() == Approx(-200.0).epsilon(0.1));
  CHECK(mle.weight[5].item<double>() == Approx(0.4).epsilon(0.1));
  CHECK(std::abs(mle.weight[2].item<double>()) * 30.0 < 0.1);  // per standard deviation of that column
  CHECK(std::abs(mle.weight[3].item<double>()) < 0.1);
  CHECK(std::abs(mle.weight[4].item<double>()) * 0.1 < 0.1);
  CHECK(mle.bias == Approx(-0.5).margin(0.1));
}

TEST_CASE("L1 logistic regression separates a separable problem", "[evaluation][metrics]") {
  // Two clusters split by x0 + x1 > 0 with a margin; a third column is noise.
  torch::manual_seed(3);
  auto x = torch::randn({400, 3}, torch::kFloat64);
  const auto side = (x.select(1, 0) + x.select(1, 1)).gt(0);
  x.select(1, 0).add_(torch::where(side, torch::full({400}, 1.0, torch::kFloat64), torch::full({400}, -1.0, torch::kFloat64)));
  const auto fit = fit_l1_logistic(x, side, {});
  const auto predicted = fit.predict(x.to(torch::kFloat32)).gt(0.5);
  const double accuracy = predicted.eq(side).to(torch::kFloat64).mean().item<double>();
  std::cout << "separable problem: accuracy " << accuracy << ", w = " << fit.weight << "\n";
  CHECK(accuracy == 1.0);
  CHECK(fit.weight[0].item<double>() > 0);
  CHECK(fit.weight[1].item<double>() > 0);
}

TEST_CASE("seeded permutation and data lookup", "[evaluation][metrics]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto a = seeded_permutation(100, 0), b = seeded_permutation(100, 0), c = seeded_permutation(100, 1);
  CHECK(a == b);
  CHECK(a != c);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) CHECK(sorted[i] == i);
  const auto files = contact_structure_files(sapling::test::data_path("psicov"));
  CHECK(files.size() == 100);  // the *.chain.pdb.gz files only
  CHECK(files.front().filename() == "1a3a.chain.pdb.gz");
  CHECK_THROWS_WITH(data_path("/nonexistent/x", "ss/cb513.csv.gz", "train_data"),
                    Catch::Contains("train_data") && Catch::Contains("/nonexistent/x"));
}

TEST_CASE("EvalResult keeps metric order and rejects duplicates", "[evaluation][metrics]") {
  EvalResult r;
  r.add("zeta", 1.0);
  r.add("alpha", 2.0);
  CHECK_THROWS_WITH(r.add("zeta", 3.0), Catch::Contains("zeta"));
  CHECK(r.get("alpha") == 2.0);
  CHECK_THROWS_WITH(r.get("alpa"), Catch::Contains("alpha"));
  const auto text = r.to_json("t").dump();
  CHECK(text.find("zeta") < text.find("alpha"));
  CHECK(r.format().find("zeta") < r.format().find("alpha"));
}
