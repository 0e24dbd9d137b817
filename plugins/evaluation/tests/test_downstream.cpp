// Downstream metrics against hand computations (Spearman with ties, MCC, F1, R^2, ridge, bootstrap), masked marginals against direct logits, hostile label/mutant files.
#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>

#include "downstream_support.hpp"
#include "sapling/internal/bench.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/model_loading.hpp"
#include "sapling/internal/stats.hpp"
#include "support.hpp"
#include "test_support.hpp"

using namespace sapling;
using namespace sapling::evaluation;
using Catch::Matchers::Contains;

namespace {

// The message of the sapling::Error that `f` throws ("" when it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::filesystem::path write(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
  write_file_atomic(dir / name, text);
  return dir / name;
}

}  // namespace

TEST_CASE("Spearman with ties, Pearson, R^2: hand-computed values", "[evaluation][metrics][downstream]") {
  // Ranks of x with the tie averaged: 1, 2.5, 2.5, 4; of y: 1, 3, 2, 4.
  // Deviations from 2.5: x -1.5 0 0 1.5, y -1.5 .5 -.5 1.5 -> 4.5 / sqrt(4.5 * 5) (scipy: 0.9486832980505138).
  const std::vector<double> x{1, 2, 2, 3}, y{1, 3, 2, 4};
  CHECK(stats::average_ranks(x) == std::vector<double>{1, 2.5, 2.5, 4});
  const double expected = 4.5 / std::sqrt(4.5 * 5);
  const double rho = stats::spearman(x, y);
  std::cout << "spearman " << rho << " expected " << expected << " |diff| " << std::fabs(rho - expected) << "\n";
  CHECK(std::fabs(rho - expected) < 1e-12);
  CHECK(std::fabs(stats::spearman({3, 2, 1}, {1, 2, 3}) + 1) < 1e-12);
  CHECK(std::isnan(stats::spearman({1, 1, 1}, {1, 2, 3})));  // constant side: undefined, not 0
  // Pearson of 1,2,3 and 2,4,7: deviations -1 0 1 and -7/3 -1/3 8/3 -> 5 / sqrt(2 * 114/9).
  CHECK(std::fabs(stats::pearson({1, 2, 3}, {2, 4, 7}) - 5 / std::sqrt(2 * 114.0 / 9)) < 1e-12);
  // scikit-learn's r2_score example: 0.9486081370449679.
  const double r2 = stats::r_squared({2.5, 0.0, 2, 8}, {3, -0.5, 2, 7});
  CHECK(std::fabs(r2 - 0.9486081370449679) < 1e-12);
  CHECK_THROWS_WITH(stats::spearman({1, 2}, {1}), Contains("2 values against 1"));
}

TEST_CASE("MCC and F1 from confusion counts: hand-computed values", "[evaluation][metrics][downstream]") {
  // tp 3, fp 1, fn 2, tn 4: (12 - 2) / sqrt(4 * 5 * 5 * 6); F1 = 6 / (6 + 1 + 2).
  const stats::Confusion c{3, 1, 2, 4};
  CHECK(std::fabs(stats::mcc(c) - 10 / std::sqrt(600.0)) < 1e-12);
  CHECK(std::fabs(stats::f1(c) - 6.0 / 9) < 1e-12);
  CHECK(stats::mcc({0, 0, 3, 5}) == 0);  // nothing predicted positive: 0 (scikit-learn), not NaN
  CHECK(stats::f1({0, 0, 0, 5}) == 0);
  CHECK(stats::mcc({4, 0, 0, 6}) == Approx(1.0));
}

TEST_CASE("ridge regression: the closed form on a 1-D case computed by hand", "[evaluation][metrics][downstream]") {
  // x 1..4, y 1 3 2 5: sum (x - 2.5)(y - 2.75) = 5.5, sum (x - 2.5)^2 = 5; standardised sum z^2 = n = 4.
  // Prediction at x = 5: 2.75 + 5.5 * 2.5 / (1.25 * (4 + lambda)) (lambda 0: least squares slope 1.1 -> 5.5).
  const auto x = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kFloat64).unsqueeze(1);
  const std::vector<double> y{1, 3, 2, 5};
  const auto at5 = torch::tensor({5.0}, torch::kFloat64).unsqueeze(1);
  for (const double lambda : {0.0, 2.0, 100.0}) {
    const double got = fit_ridge(x, torch::tensor(y, torch::kFloat64), lambda).predict(at5).item<double>();
    const double expected = 2.75 + 5.5 * 2.5 / (1.25 * (4 + lambda));
    std::cout << "ridge lambda " << lambda << ": " << got << " expected " << expected << " |diff| " << std::fabs(got - expected) << "\n";
    CHECK(std::fabs(got - expected) < 1e-10);
  }
  CHECK_THROWS_WITH(fit_ridge(x, torch::ones({2}), 1), Contains("N targets"));
  // Two outputs are two independent fits: the second column, y doubled, predicts twice as much.
  const auto two = fit_ridge(x, torch::stack({torch::tensor(y, torch::kFloat64), 2 * torch::tensor(y, torch::kFloat64)}, 1), 2.0);
  CHECK(two.predict(at5)[0][1].item<double>() == Approx(2 * (2.75 + 5.5 * 2.5 / (1.25 * 6))));
}

TEST_CASE("per-item scores recompute each metric; the paired bootstrap on hand cases", "[evaluation][metrics][downstream]") {
  const stats::ItemScores sp{"spearman", {{1, 2, 2, 3}, {1, 3, 2, 4}}};
  CHECK(stats::evaluate(sp) == stats::spearman({1, 2, 2, 3}, {1, 3, 2, 4}));
  // Ratio pools: (1 + 3) / (2 + 4), not the mean of 1/2 and 3/4.
  CHECK(stats::evaluate({"ratio", {{1, 3}, {2, 4}}}) == Approx(4.0 / 6));
  // Two proteins' confusions sum before MCC: {3,1,2,4}.
  const stats::ItemScores m{"mcc", {{1, 2}, {1, 0}, {0, 2}, {3, 1}}};
  CHECK(std::fabs(stats::evaluate(m) - 10 / std::sqrt(600.0)) < 1e-12);
  CHECK(stats::evaluate({"mean", {{1, NAN, 3}}}) == Approx(2.0));
  CHECK(stats::evaluate({"r2", {{1, 1}, {4, 6}}}) == Approx(1 - 2.0 / 10));  // 1 - pooled residual / pooled total  // NaN proteins skipped, as the task's mean
  CHECK(stats::evaluate(m, {0, 0}) == stats::mcc({2, 2, 0, 6}));  // a resample with a repeat
  CHECK_THROWS_WITH(stats::evaluate({"median", {{1}}}), Contains("unknown kind 'median'"));
  CHECK_THROWS_WITH(stats::evaluate({"ratio", {{1}}}), Contains("expected 2 columns"));
  // JSON round trip, null for NaN.
  const auto back = stats::item_scores_from_json(nlohmann::json::parse(stats::to_json(m).dump()));
  CHECK(back.columns == m.columns);

  // A constant paired difference of +1 per protein: Δ = 1 and every replicate gives 1.
  const stats::ItemScores base{"mean", {{0.1, 0.5, 0.3, 0.9, 0.2}}}, plus1{"mean", {{1.1, 1.5, 1.3, 1.9, 1.2}}};
  const auto d = stats::paired_bootstrap({plus1}, {base}, 200, 3);
  CHECK(d.delta == Approx(1.0));
  CHECK(d.low == Approx(1.0));
  CHECK(d.high == Approx(1.0));
  CHECK(d.excludes_zero());
  // Identical scores: Δ = 0 and the interval is [0, 0], which does not exclude zero.
  const auto same = stats::paired_bootstrap({base, base}, {base, base}, 200, 3);
  CHECK(same.delta == 0);
  CHECK_FALSE(same.excludes_zero());
  // Noisy differences of mean 0.2: the interval holds Δ; equal seeds give equal intervals.
  const stats::ItemScores noisy{"mean", {{0.4, 0.4, 0.6, 1.0, 0.5}}};  // differences .3 -.1 .3 .1 .3
  const auto a = stats::paired_bootstrap({noisy}, {base}, 1000, 1), b = stats::paired_bootstrap({noisy}, {base}, 1000, 1);
  CHECK(a.delta == Approx(0.18));
  CHECK(a.low <= a.delta);
  CHECK(a.high >= a.delta);
  CHECK(a.low >= -0.1 - 1e-12);
  CHECK(a.high <= 0.3 + 1e-12);
  CHECK(a.low == b.low);
  CHECK(a.high == b.high);
  CHECK_THROWS_WITH(stats::paired_bootstrap({noisy}, {sp}, 10, 0), Contains("did not score the same items"));
}

TEST_CASE("bench table: Δ with a paired-bootstrap interval where cells keep per-item scores", "[evaluation][bench]") {
  bench::Config config;
  config.file = "bench.toml";
  config.baseline = "base";
  config.seeds = {0, 1};
  config.models = {{"base", "", "", {}, ""}, {"better", "", "", {}, ""}};
  bench::Task task;
  task.label = task.task = "variant_effect";
  task.metrics = {"spearman"};
  config.tasks = {task};
  std::vector<bench::CellResult> cells;
  for (int64_t seed : {0, 1}) {
    const stats::ItemScores base{"spearman", {{1, 2, 3, 4, 5, 6}, {2, 1, 4, 3, 6, 5}}};
    const stats::ItemScores better{"spearman", {{1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5, 6.5}}};
    cells.push_back({"base", "variant_effect", seed, true, "", {{"spearman", stats::evaluate(base)}}, {{"spearman", base}}});
    cells.push_back({"better", "variant_effect", seed, true, "", {{"spearman", stats::evaluate(better)}}, {{"spearman", better}}});
  }
  const auto d = bench::delta_interval(cells, "better", "base", "variant_effect", "spearman");
  REQUIRE(d);
  // rho(base) = 1 - 6 * 6 / (6 * 35) = 29/35; rho(better) = 1.
  CHECK(d->delta == Approx(6.0 / 35));
  CHECK(d->seeds == 2);
  const auto table = bench::markdown_table(config, cells);
  std::cout << table;
  CHECK_THAT(table, Contains("+0.171 ["));
  // A cell without per-item scores (an old cache) keeps the plain relative Δ.
  for (auto& c : cells) c.items.clear();
  CHECK_FALSE(bench::delta_interval(cells, "better", "base", "variant_effect", "spearman"));
  CHECK_THAT(bench::markdown_table(config, cells), !Contains("["));
}

TEST_CASE("masked and wild-type marginals equal a direct computation from the model's logits", "[evaluation][downstream]") {
  test::load_build_plugins();
  auto dir = sapling::test::data_set("esm2_t6_8M_uniprot");
  if (dir.empty()) dir = test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16";
  auto model = load_sequence_encoder(dir);
  const std::string wt = "HPETLVKVKDAEDQLGARVGYIELDLNSGKILESFRPEERF";  // TEM-1 residues 24-64
  const auto& tok = model->tokenizer();
  // Direct: one forward pass per masked position, log-softmax at that position.
  auto direct = [&](int64_t position, bool mask) {
    torch::NoGradGuard no_grad;
    auto ids = torch::tensor(tok.encode(wt), torch::kInt64).unsqueeze(0);
    if (mask) ids[0][position + 1] = tok.mask_id();
    const auto out = model->forward(ids, torch::ones_like(ids, torch::kBool), ForwardRequest{});
    return torch::log_softmax(out.logits.to(torch::kFloat64)[0][position + 1], -1);
  };
  const std::vector<int64_t> positions{0, 7, 40};
  const auto masked = residue_log_probs(*model, wt, true, positions, 2);  // 2 passes: batch of 2, then 1
  const auto unmasked = residue_log_probs(*model, wt, false);
  double worst = 0;
  for (const auto p : positions) {
    worst = std::max(worst, (masked[p] - direct(p, true)).abs().max().item<double>());
    worst = std::max(worst, (unmasked[p] - direct(p, false)).abs().max().item<double>());
  }
  std::cout << "marginals vs direct logits: max |diff| " << worst << "\n";
  CHECK(worst < 1e-4);  // batched vs single passes in float32
  CHECK(std::isnan(masked[1][0].item<double>()));  // positions not asked for stay NaN

  // H24A:V31R (0-based 0 and 7): sum of the two masked log-ratios.
  const auto mutations = parse_mutant("H24A:V31R", wt, 24, "test");
  const auto d0 = direct(0, true), d7 = direct(7, true);
  const double expected = (d0[tok.id("A")] - d0[tok.id("H")] + d7[tok.id("R")] - d7[tok.id("V")]).item<double>();
  const double got = marginal_score(masked, mutations, tok);
  std::cout << "masked-marginal score " << got << " direct " << expected << "\n";
  CHECK(std::fabs(got - expected) < 1e-4);
}

TEST_CASE("mutant strings that do not match the wild type are one clear error", "[evaluation][hostile][downstream]") {
  const std::string wt = "HPETLV";  // numbered from 24
  CHECK(parse_mutant("H24C", wt, 24, "t").front().index == 0);
  CHECK(parse_mutant("P25A:V29W", wt, 24, "t").size() == 2);
  CHECK_THAT(error_of([&] { parse_mutant("A24C", wt, 24, "f.csv:7"); }), Contains("f.csv:7") && Contains("has H at position 24, not A"));
  CHECK_THAT(error_of([&] { parse_mutant("H2C", wt, 24, "f.csv:3"); }), Contains("position 2 outside the wild type (24-29)"));
  CHECK_THAT(error_of([&] { parse_mutant("H24", wt, 24, "r"); }), Contains("not <wild-type letter><position><new letter>"));
  CHECK_THAT(error_of([&] { parse_mutant("H24X", wt, 24, "r"); }), Contains("new residue 'X'"));
  CHECK_THAT(error_of([&] { parse_mutant("H24C:H24A", wt, 24, "r"); }), Contains("mutated twice"));
  CHECK_THAT(error_of([&] { parse_mutant("", wt, 24, "r"); }), Contains("empty mutant"));

  const auto dir = test::temp_dir("dms");
  const auto good = write(dir, "good.csv", "\xEF\xBB\xBF,mutant,2500\n0,H24C,0.5\n1,P25A,\n2,E26D,-1.5\n");
  const auto table = read_variant_csv(good, "mutant", "2500", wt, 24);
  CHECK(table.rows.size() == 2);
  CHECK(table.rows_without_score == 1);  // counted, not silently dropped
  CHECK_THAT(error_of([&] { read_variant_csv(write(dir, "bad.csv", "mutant,2500\nH24C,1\nQ26D,2\n"), "mutant", "2500", wt, 24); }),
             Contains("bad.csv:3") && Contains("has E at position 26, not Q"));
  CHECK_THAT(error_of([&] { read_variant_csv(good, "mutant", "DMS_score", wt, 24); }), Contains("no column 'DMS_score'"));
  CHECK_THAT(error_of([&] { read_variant_csv(write(dir, "text.csv", "mutant,s\nH24C,high\n"), "mutant", "s", wt, 24); }),
             Contains("text.csv:2") && Contains("'high' is not a number"));
  CHECK_THAT(error_of([&] { read_variant_csv(write(dir, "cols.csv", "mutant,s\nH24C,1,2\n"), "mutant", "s", wt, 24); }),
             Contains("cols.csv:2: expected 2 comma-separated fields"));
  // ProteinGym layout: mutated_sequence must agree; the wild type can be derived from it.
  const auto pg = write(dir, "pg.csv", "mutant,mutated_sequence,DMS_score\nP2A:T4S,HAESLV,0.1\nH1C,CPETLV,0.3\n");
  CHECK(wild_type_from_variants(pg, "mutant", 1) == wt);
  CHECK(read_variant_csv(pg, "mutant", "DMS_score", wt, 1).rows.size() == 2);
  CHECK_THAT(error_of([&] { read_variant_csv(write(dir, "pgbad.csv", "mutant,mutated_sequence,DMS_score\nH1C,HPETLV,1\n"),
                                             "mutant", "DMS_score", wt, 1); }),
             Contains("pgbad.csv:2: mutated_sequence differs"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("FLIP fitness CSV and per-residue label files: hostile inputs name file, line and key", "[evaluation][hostile][downstream]") {
  const auto dir = test::temp_dir("flip");
  const auto ok = write(dir, "ok.csv", "sequence,target,set,validation\nMKV,1.5,train,\nMKA,0.5,train,True\nMKW,2,test,\n");
  const auto rows = read_fitness_csv(ok);
  REQUIRE(rows.size() == 3);
  CHECK(rows[1].validation);
  CHECK(rows[2].test);
  CHECK_THAT(error_of([&] { read_fitness_csv(write(dir, "a.csv", "sequence,set\nMKV,train\n")); }), Contains("a.csv:1: no column 'target'"));
  CHECK_THAT(error_of([&] { read_fitness_csv(write(dir, "b.csv", "sequence,target,set\nMKV,x,train\nMKW,1,test\n")); }),
             Contains("b.csv:2: target 'x'"));
  CHECK_THAT(error_of([&] { read_fitness_csv(write(dir, "c.csv", "sequence,target,set\nMKV,1,dev\n")); }),
             Contains("c.csv:2: set 'dev'"));
  CHECK_THAT(error_of([&] { read_fitness_csv(write(dir, "d.csv", "sequence,target,set\nMKV,1,train\n")); }),
             Contains("1 train and 0 test rows"));
  CHECK_THAT(error_of([&] { read_fitness_csv(write(dir, "e.csv", "sequence,target,set,validation\nMKV,1,train,maybe\n")); }),
             Contains("e.csv:2: validation 'maybe'"));
  CHECK_THAT(error_of([&] { read_fitness_csv(write(dir, "f.csv", "")); }), Contains("empty file"));

  const auto seqs = write(dir, "sequences.fasta", ">P1\nMKVA\n>P2\nMKW\n");
  const auto labels = read_residue_labels(seqs, write(dir, "l.fasta", ">P1 SET=train VALIDATION=False\n0104\n>P2 SET=test VALIDATION=False\n700\n"), 0, 7);
  REQUIRE(labels.size() == 2);
  CHECK(labels[0].labels == std::vector<int64_t>{0, 1, 0, 4});
  CHECK(labels[1].test);
  CHECK_THAT(error_of([&] { read_residue_labels(seqs, write(dir, "len.fasta", ">P1 SET=train VALIDATION=False\n010\n"), 0, 7); }),
             Contains("len.fasta:1: P1: 3 labels for a sequence of 4 residues"));
  CHECK_THAT(error_of([&] { read_residue_labels(seqs, write(dir, "id.fasta", ">P9 SET=train VALIDATION=False\n010\n"), 0, 7); }),
             Contains("P9: no sequence with this ID"));
  CHECK_THAT(error_of([&] { read_residue_labels(seqs, write(dir, "dig.fasta", ">P2 SET=test VALIDATION=False\n109\n"), 1, 9); }),
             Contains("dig.fasta:1: P2: residue 2: label '0' (expected a digit 1-9)"));
  CHECK_THAT(error_of([&] { read_residue_labels(seqs, write(dir, "set.fasta", ">P2 VALIDATION=False\n100\n"), 0, 7); }),
             Contains("SET='' (expected SET=train or SET=test"));
  CHECK_THAT(error_of([&] { read_residue_labels(seqs, write(dir, "val.fasta", ">P2 SET=test\n100\n"), 0, 7); }),
             Contains("VALIDATION=''"));
  CHECK_THAT(error_of([&] { read_residue_labels(seqs, write(dir, "x.fasta", ">P2 SET=test VALIDATION=False\n1x0\n"), 0, 7); }),
             Contains("residue 2: label 'X'"));
  // Repeated IDs (FLIP bind has them): same labels are kept once, in the more held-out set; different labels are an error.
  LabelReport report;
  const auto repeated = read_residue_labels(
      seqs, write(dir, "rep.fasta", ">P1 SET=train VALIDATION=False\n0104\n>P2 SET=train VALIDATION=False\n700\n"
                                   ">P1 SET=train VALIDATION=False\n0104\n>P2 SET=test VALIDATION=False\n700\n"), 0, 7, &report);
  REQUIRE(repeated.size() == 2);
  CHECK_FALSE(repeated[0].test);
  CHECK(repeated[1].test);  // train and test: test wins, so no test chain is trained on
  CHECK(report.repeated == 2);
  CHECK(report.conflicting == 1);
  CHECK_THAT(error_of([&] { read_residue_labels(seqs, write(dir, "rep2.fasta", ">P2 SET=train VALIDATION=False\n700\n>P2 SET=train VALIDATION=False\n710\n"), 0, 7); }),
             Contains("rep2.fasta:3: P2: repeats the ID of line 1 with different labels"));
  std::filesystem::remove_all(dir);
}
