// The core helpers the alignment trainer uses: MLM masking statistics and combine_losses normalisations.
#include <catch2/catch.hpp>

#include <iostream>
#include <random>

#include "sapling/error.hpp"
#include "sapling/internal/loss_combination.hpp"
#include "sapling/masking.hpp"

namespace {

// The ESM-2 vocabulary (design/MODELS.md), so <cls>/<eos>/<pad>/<mask> have their real ids.
sapling::Tokenizer esm_tokenizer() {
  std::vector<std::string> vocab = {"<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R",
                                    "T",     "I",     "D",     "P",     "K", "Q", "N", "F", "Y", "M", "H",
                                    "W",     "C",     "X",     "B",     "U", "Z", "O", ".", "-", "<null_1>", "<mask>"};
  return sapling::Tokenizer(vocab, {"<cls>", "<eos>", "<pad>", "<mask>", "<unk>"});
}

// 300 random proteins of 20..300 residues (about 48k residues), padded into one batch.
sapling::TokenBatch random_batch(const sapling::Tokenizer& tokenizer) {
  std::mt19937 rng(7);
  const std::string letters = "ACDEFGHIKLMNPQRSTVWYX";
  std::vector<std::string> sequences;
  for (int i = 0; i < 300; ++i) {
    std::string s(std::uniform_int_distribution<int>(20, 300)(rng), 'A');
    for (char& c : s) c = letters[std::uniform_int_distribution<size_t>(0, letters.size() - 1)(rng)];
    sequences.push_back(s);
  }
  return tokenizer.batch(sequences);
}

}  // namespace

TEST_CASE("mask_tokens: 15% of real residues become <mask>, specials never", "[masking]") {
  const auto tokenizer = esm_tokenizer();
  const auto batch = random_batch(tokenizer);
  const auto residues = sapling::real_residue_mask(batch.ids, batch.mask, tokenizer);
  const int64_t n_residues = residues.sum().item<int64_t>();
  // Exactly the non-special, non-pad tokens: mask count minus BOS and EOS per sequence.
  CHECK(n_residues == batch.mask.sum().item<int64_t>() - 2 * batch.ids.size(0));

  auto generator = sapling::make_generator(42);
  const auto masked = sapling::mask_tokens(batch.ids, residues, tokenizer, {}, generator);
  const auto selected = masked.labels != sapling::kIgnoreLabel;
  const double fraction = selected.sum().item<double>() / static_cast<double>(n_residues);
  std::cout << "masked fraction over " << n_residues << " residues: " << fraction << " (want 0.15 +- 0.01)\n";
  CHECK(std::abs(fraction - 0.15) < 0.01);
  CHECK(selected.logical_and(residues.logical_not()).sum().item<int64_t>() == 0);  // specials and pad never
  CHECK(masked.ids.masked_select(selected).eq(tokenizer.mask_id()).all().item<bool>());  // mask-only
  CHECK(masked.ids.masked_select(selected.logical_not()).equal(batch.ids.masked_select(selected.logical_not())));
  CHECK(masked.labels.masked_select(selected).equal(batch.ids.masked_select(selected)));

  SECTION("seeded reproducibility") {
    auto same = sapling::make_generator(42);
    auto other = sapling::make_generator(43);
    CHECK(sapling::mask_tokens(batch.ids, residues, tokenizer, {}, same).ids.equal(masked.ids));
    CHECK_FALSE(sapling::mask_tokens(batch.ids, residues, tokenizer, {}, other).ids.equal(masked.ids));
    // The generator advances: a second call on the same generator draws a new mask.
    CHECK_FALSE(sapling::mask_tokens(batch.ids, residues, tokenizer, {}, generator).ids.equal(masked.ids));
  }
  SECTION("80/10/10") {
    sapling::MaskingOptions bert;
    bert.replace_with_mask = 0.8;
    bert.replace_with_random = 0.1;
    auto g = sapling::make_generator(5);
    const auto m = sapling::mask_tokens(batch.ids, residues, tokenizer, bert, g);
    const auto sel = m.labels != sapling::kIgnoreLabel;
    const auto n_sel = sel.sum().item<double>();
    const auto new_ids = m.ids.masked_select(sel), old_ids = batch.ids.masked_select(sel);
    const double as_mask = new_ids.eq(tokenizer.mask_id()).sum().item<double>() / n_sel;
    const double changed = (new_ids.ne(tokenizer.mask_id()).logical_and(new_ids.ne(old_ids))).sum().item<double>() / n_sel;
    const double kept = new_ids.eq(old_ids).sum().item<double>() / n_sel;
    std::cout << "80/10/10 over " << n_sel << " selected: mask " << as_mask << ", random " << changed << ", kept " << kept
              << " (want 0.8, 0.095, 0.105)\n";
    CHECK(std::abs(sel.sum().item<double>() / n_residues - 0.15) < 0.01);
    CHECK(std::abs(as_mask - 0.8) < 0.015);
    // A random draw equals the original residue 1 time in 20: 0.1 * 19/20 change, 0.1 + 0.1/20 stay.
    CHECK(std::abs(changed - 0.095) < 0.01);
    CHECK(std::abs(kept - 0.105) < 0.01);
    // Random replacements are standard residues only.
    const auto standard = torch::tensor(tokenizer.standard_residue_ids());
    const auto randoms = new_ids.masked_select(new_ids.ne(tokenizer.mask_id()));
    CHECK(torch::isin(randoms, standard).logical_or(randoms.eq(old_ids.masked_select(new_ids.ne(tokenizer.mask_id()))))
              .all()
              .item<bool>());
  }
  SECTION("bad options fail") {
    sapling::MaskingOptions bad;
    bad.probability = 1.5;
    CHECK_THROWS_AS(sapling::mask_tokens(batch.ids, residues, tokenizer, bad, generator), sapling::Error);
    bad.probability = 0.15;
    bad.replace_with_mask = 0.8;
    bad.replace_with_random = 0.3;
    CHECK_THROWS_WITH(sapling::mask_tokens(batch.ids, residues, tokenizer, bad, generator), Catch::Contains("exceed 1"));
  }
}

TEST_CASE("combine_losses: per-token mean and the published constant", "[loss_combination]") {
  const auto mlm = torch::tensor({1.0, 2.0, 3.0}).requires_grad_(true);
  const auto structure = torch::tensor({2.0, 4.0, 6.0, std::nan("")}).requires_grad_(true);
  const auto keep = torch::tensor({1, 0, 1, 0}, torch::kInt32).to(torch::kBool);
  std::vector<sapling::WeightedLoss> terms = {{"mlm", mlm, {}, 1.0, 0.15}, {"structure_token", structure, keep, 0.5, 0.8}};

  SECTION("per-token mean (default)") {
    const auto c = sapling::combine_losses(terms);
    CHECK(c.terms.at("mlm") == Approx(2.0));
    CHECK(c.terms.at("structure_token") == Approx(4.0));  // (2 + 6) / 2; the dropped NaN does not leak
    CHECK(c.counts.at("structure_token") == 2);
    CHECK(c.total.item<double>() == Approx(2.0 + 0.5 * 4.0));
    c.total.backward();
    CHECK(mlm.grad().allclose(torch::full({3}, 1.0 / 3)));
    CHECK(structure.grad().allclose(torch::tensor({0.25, 0.0, 0.25, 0.0})));  // 0.5 / 2 where kept
  }
  SECTION("published constant: sum / (240.50554... * batch size * ratio)") {
    sapling::NormalizationSettings published;
    published.mode = sapling::LossNormalization::PublishedConstant;
    published.batch_size = 2;
    const auto c = sapling::combine_losses(terms, published);
    // The official constants.py: MEAN_SEQ_LEN = 240.50554219467827.
    const double mean = 240.50554219467827;
    const double want_mlm = 6.0 / (mean * 2 * 0.15), want_structure = 8.0 / (mean * 2 * 0.8);
    CHECK(c.terms.at("mlm") == Approx(want_mlm));
    CHECK(c.terms.at("structure_token") == Approx(want_structure));
    CHECK(c.total.item<double>() == Approx(want_mlm + 0.5 * want_structure));
  }
  SECTION("nothing kept contributes zero, not NaN; bad inputs fail") {
    terms[1].keep = torch::zeros({4}, torch::kBool);
    const auto c = sapling::combine_losses(terms);
    CHECK(c.terms.at("structure_token") == 0.0);
    CHECK(c.total.item<double>() == Approx(2.0));
    CHECK(sapling::combine_losses({}).total.item<double>() == 0.0);
    terms[1].weight = -0.5;
    CHECK_THROWS_WITH(sapling::combine_losses(terms), Catch::Contains("negative weight"));
    terms[1].weight = 0.5;
    terms[1].keep = torch::ones({3}, torch::kBool);
    CHECK_THROWS_WITH(sapling::combine_losses(terms), Catch::Contains("keep mask"));
  }
}
