// Sequence packing: row layout, positions and masks by hand, and packed = padded for the encoders, the trainer's
// losses, selection and gradients (ESM2 and AMPLIFY, reference model and all three losses on) and `sapling embed`.
#include <catch2/catch.hpp>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "sapling/internal/embed.hpp"
#include "sapling/model_loading.hpp"
#include "sapling/packing.hpp"
#include "sapling/safetensors.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace sapling;

namespace {

constexpr double kTolerance = 1e-5;  // fp32 on the CPU: only the summation order differs

// scaled_max_diff that is infinite, not silently smaller, when either side holds NaN or inf.
double checked_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (!torch::isfinite(a).all().item<bool>() || !torch::isfinite(b).all().item<bool>())
    return std::numeric_limits<double>::infinity();
  return test::scaled_max_diff(a, b);
}

// Proteins of assorted lengths (a few with <mask> tokens, so ESM2's per-protein token-dropout ratio differs).
std::vector<std::string> sample_sequences() {
  return {"MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "GSHM", "MSTNPKPQRKTKRNTNRRPQDVKFPGG<mask>GQIVGGVYLLPRR",
          "ACDEFGHIKLMNPQRSTVWY", "MA<mask>K<mask>LV", "PEPTIDEPEPTIDEPEPTIDE"};
}

// Each residue token of a layout as (item, position in the item) -> flat token index.
std::map<std::pair<int64_t, int64_t>, int64_t> token_keys(const torch::Tensor& mask, const torch::Tensor& segments) {
  std::map<std::pair<int64_t, int64_t>, int64_t> keys;
  const int64_t B = mask.size(0), T = mask.size(1);
  const auto positions = segments.defined() ? packed_positions(segments) : torch::Tensor();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      if (!mask[b][t].item<bool>()) continue;
      const int64_t item = segments.defined() ? segments[b][t].item<int64_t>() : b;
      const int64_t position = segments.defined() ? positions[b][t].item<int64_t>() : t;
      keys[{item, position}] = b * T + t;
    }
  return keys;
}

// Rows of `flat` ([B * T, ...] or [B, T, ...] flattened to tokens) in the order of `keys`.
torch::Tensor in_key_order(const torch::Tensor& per_token, const std::map<std::pair<int64_t, int64_t>, int64_t>& keys) {
  std::vector<int64_t> order;
  for (const auto& kv : keys) order.push_back(kv.second);
  const auto flat = per_token.reshape({per_token.size(0) * per_token.size(1), -1});
  return flat.index_select(0, torch::tensor(order, torch::kInt64));
}

}  // namespace

TEST_CASE("pack_rows: first fit in decreasing length, input order within a row, long items alone; row length choice",
          "[packing]") {
  // Capacity 8: 5 opens row 0, 4 does not fit there (row 1), 3 fills row 0, 2 joins row 1.
  const auto p = pack_rows({5, 3, 4, 2}, 8);
  REQUIRE(p.size() == 4);
  CHECK((p[0].row == 0 && p[0].offset == 0));
  CHECK((p[1].row == 0 && p[1].offset == 5));
  CHECK((p[2].row == 1 && p[2].offset == 0));
  CHECK((p[3].row == 1 && p[3].offset == 4));
  const auto alone = pack_rows({3, 12, 3}, 8);  // 12 > 8: a row of its own, the others share one
  CHECK(alone[1].row == 0);
  CHECK(alone[0].row == 1);
  CHECK(alone[2].row == 1);
  CHECK(alone[2].offset == 3);
  CHECK_THROWS_WITH(pack_rows({3}, 0), Catch::Contains("row length must be positive"));
  // 26 tokens, longest 10: rows of 10 need 3 (30 padded tokens), rows of 13 hold them in 2 with no pad.
  CHECK(choose_row_tokens({10, 6, 4, 3, 3}) == 13);
  CHECK(choose_row_tokens({10, 6, 4}) == 10);
}

TEST_CASE("packed positions, attention blocks and per-protein sums", "[packing]") {
  const auto segments = torch::tensor({0, 0, 0, 2, 2, -1, -1, 1, 1, 1, 1, -1}, torch::kInt64).view({2, 6});
  const auto positions = packed_positions(segments);
  CHECK(torch::equal(positions, torch::tensor({0, 1, 2, 0, 1, 0, 0, 0, 1, 2, 3, 0}, torch::kInt64).view({2, 6})));
  const auto mask = packed_attention_mask(segments);
  REQUIRE(mask.sizes() == torch::IntArrayRef({2, 1, 6, 6}));
  CHECK(mask[0][0][0][2].item<bool>());
  CHECK_FALSE(mask[0][0][2][3].item<bool>());  // protein 0 never sees protein 2
  CHECK(mask[0][0][5][5].item<bool>());        // a pad row keeps one key: no empty softmax
  CHECK_FALSE(mask[1][0][4][0].item<bool>());
  const auto sums = segment_sum(torch::ones({2, 6}, torch::kInt64), segments);
  CHECK(torch::equal(sums, torch::tensor({3, 3, 3, 2, 2, 1, 1, 4, 4, 4, 4, 1}, torch::kInt64).view({2, 6})));
  CHECK_THROWS_WITH(packed_positions(torch::zeros({2, 6}, torch::kInt32)), Catch::Contains("int64"));
}

TEST_CASE("epoch plans, packed: every protein once, real tokens within the budget, seeded", "[packing][batches]") {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 200; ++i) lengths.push_back(20 + (i * 37) % 400);
  BatchPlanSettings packed;
  packed.mode = Batching::Packed;
  packed.tokens_per_batch = 1024;
  packed.proteins_per_batch = 16;
  const auto plan = plan_epoch(lengths, packed, 7, 0);
  std::multiset<size_t> seen;
  for (const auto& batch : plan) {
    int64_t tokens = 0;
    for (size_t i : batch) {
      seen.insert(i);
      tokens += lengths[i] + 2;
    }
    CHECK(batch.size() <= 16);
    CHECK((tokens <= 1024 || batch.size() == 1));
  }
  CHECK(seen.size() == 200);
  CHECK(std::set<size_t>(seen.begin(), seen.end()).size() == 200);
  CHECK(plan == plan_epoch(lengths, packed, 7, 0));
  CHECK(plan != plan_epoch(lengths, packed, 7, 1));
  CHECK(parse_batching("packed") == Batching::Packed);
  CHECK_THROWS_WITH(parse_batching("pack"), Catch::Contains("\"packed\""));
}

TEST_CASE("packed rows give every protein the outputs it has alone in a padded row (ESM2, AMPLIFY)",
          "[packing][encoders]") {
  test::load_build_plugins();
  for (const char* name : {"esm2_tiny", "amplify_tiny"}) {
    INFO(name);
    auto model = load_sequence_encoder(test::fixtures_dir() / name);
    REQUIRE(model->supports_packing());
    const auto& tokenizer = model->tokenizer();
    std::vector<std::vector<int64_t>> encoded;
    for (const auto& s : sample_sequences()) encoded.push_back(tokenizer.encode(s));
    const auto padded = tokenizer.pad(encoded);
    const auto packed = pack_tokens(encoded, 48, tokenizer.pad_id());  // several rows, several proteins in some
    CHECK(packed.ids.size(0) < padded.ids.size(0));
    torch::NoGradGuard no_grad;
    ForwardRequest request;
    request.hidden_states = true;
    const auto alone = model->forward(padded.ids, padded.mask, request);
    request.segments = packed.segments;
    const auto together = model->forward(packed.ids, packed.mask, request);
    const auto padded_keys = token_keys(padded.mask, torch::Tensor());
    const auto packed_keys = token_keys(packed.mask, packed.segments);
    REQUIRE(padded_keys.size() == packed_keys.size());
    double worst = 0;
    const auto compare = [&](const torch::Tensor& a, const torch::Tensor& b) {
      worst = std::max(worst, checked_diff(in_key_order(b, packed_keys), in_key_order(a, padded_keys)));
      // Pad tokens too: a NaN there reaches real tokens through 0 x NaN in the attention's matrix product.
      CHECK(torch::isfinite(b).all().item<bool>());
    };
    compare(alone.logits, together.logits);
    compare(alone.last_hidden, together.last_hidden);
    for (size_t l = 0; l < alone.hidden_states.size(); ++l) compare(alone.hidden_states[l], together.hidden_states[l]);
    std::cout << name << ": packed vs padded, logits and every hidden state: scaled max diff " << worst << "\n";
    CHECK(worst < kTolerance);

    ForwardRequest maps;
    maps.attentions = true;
    maps.segments = packed.segments;
    CHECK_THROWS_WITH(model->forward(packed.ids, packed.mask, maps), Catch::Contains("one protein per row"));
    maps.attentions = false;
    maps.segments = packed.segments.to(torch::kInt32);
    CHECK_THROWS_WITH(model->forward(packed.ids, packed.mask, maps), Catch::Contains("int64"));
  }
}

TEST_CASE("sapling embed --pack writes what the padded batches write", "[packing][embed]") {
  test::load_build_plugins();
  auto model = load_sequence_encoder(test::fixtures_dir() / "esm2_tiny");
  std::vector<FastaRecord> records;
  size_t line = 1;
  for (const auto& s : sample_sequences()) {
    const auto label = "p" + std::to_string(line);
    records.push_back({label, label, s, line++});
  }
  EmbedOptions options;
  options.include = {"per_tok", "mean", "bos"};
  options.layers = {1, -1};
  options.tokens_per_batch = 64;
  const auto padded = embed_sequences(*model, records, options);
  options.packed = true;
  const auto packed = embed_sequences(*model, records, options);
  REQUIRE(padded.tensors.size() == packed.tensors.size());
  double worst = 0;
  for (size_t i = 0; i < padded.tensors.size(); ++i) {
    INFO(padded.tensors[i].first);
    REQUIRE(padded.tensors[i].first == packed.tensors[i].first);
    REQUIRE(padded.tensors[i].second.sizes() == packed.tensors[i].second.sizes());
    worst = std::max(worst, checked_diff(packed.tensors[i].second, padded.tensors[i].second));
  }
  std::cout << "embed --pack vs padded: scaled max diff " << worst << "\n";
  CHECK(worst < kTolerance);
  options.include = {"contacts"};
  CHECK_THROWS_WITH(embed_sequences(*model, records, options), Catch::Contains("contacts need one sequence per row"));
}

namespace {

// The trainer's first micro-batch of `recipe` with batching = "packed", inspected: the packed and padded layouts'
// per-residue losses, kept residues, totals and gradients must agree.
void check_trainer_packing(const std::string& recipe, const std::string& reference_recipe, const fs::path& model,
                           const std::string& tag) {
  const auto reference = test::small_reference_run(reference_recipe, model, tag + "-reference");
  const auto root = test::temp_dir(tag);
  const auto dump = root / "batch.safetensors";
  // 6 proteins (the first micro-batch: 218 residues) in rows of 100 tokens: rows hold several proteins, and pad.
  const auto r = test::run_command(test::small_train_command(
      recipe, model, root / "unused",
      "--set reference_model.path='" + (reference / "best").string() +
          "' --set data.batching=packed --set data.proteins_per_batch=6 --set data.max_length=256"
          " --set data.pack_row_tokens=100"
          " --inspect-batch '" + dump.string() + "'"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  SafetensorsFile stored(dump);
  const auto get = [&](const std::string& key) {
    INFO(key);
    REQUIRE(stored.contains(key));
    return stored.get(key);
  };
  const auto segments = get("batch.segments");
  CHECK(segments.size(0) < get("batch.proteins").item<int64_t>());  // proteins did share rows
  CHECK(segments.lt(0).any().item<bool>());                          // and some rows end in pad
  const auto packed_keys = token_keys(get("batch.mask").to(torch::kBool), segments);
  const auto padded_keys = token_keys(get("padded.batch.mask").to(torch::kBool), torch::Tensor());
  REQUIRE(packed_keys.size() == padded_keys.size());
  // Flat token index -> (protein, position), to put each layout's per-residue vectors in one order.
  const auto by_residue = [](const std::map<std::pair<int64_t, int64_t>, int64_t>& keys, const torch::Tensor& index,
                             const torch::Tensor& values) {
    std::map<int64_t, std::pair<int64_t, int64_t>> residue_of;
    for (const auto& [key, flat] : keys) residue_of[flat] = key;
    std::map<std::pair<int64_t, int64_t>, double> out;
    for (int64_t i = 0; i < index.size(0); ++i)
      out[residue_of.at(index[i].item<int64_t>())] = values[i].to(torch::kFloat64).item<double>();
    return out;
  };
  std::set<std::string> terms;
  for (const auto& name : stored.keys())
    if (name.rfind("terms.", 0) == 0 && name.size() > 5 && name.compare(name.size() - 5, 5, ".loss") == 0)
      terms.insert(name.substr(6, name.size() - 11));
  CHECK(terms.size() >= 4);  // mlm, structure_token, both contrastive directions
  double worst_loss = 0;
  int64_t kept_compared = 0;
  for (const auto& term : terms) {
    INFO(term);
    const auto index = get("terms." + term + ".index"), padded_index = get("padded.terms." + term + ".index");
    const auto loss = by_residue(packed_keys, index, get("terms." + term + ".loss"));
    const auto padded_loss = by_residue(padded_keys, padded_index, get("padded.terms." + term + ".loss"));
    REQUIRE(loss.size() == padded_loss.size());
    for (const auto& [residue, value] : loss) {
      REQUIRE(padded_loss.count(residue));
      const double diff = std::abs(value - padded_loss.at(residue)) / std::max(1.0, std::abs(value));
      worst_loss = std::isfinite(diff) ? std::max(worst_loss, diff) : std::numeric_limits<double>::infinity();
    }
    if (stored.contains("terms." + term + ".keep")) {
      const auto keep = by_residue(packed_keys, index, get("terms." + term + ".keep"));
      const auto padded_keep = by_residue(padded_keys, padded_index, get("padded.terms." + term + ".keep"));
      CHECK(keep == padded_keep);
      kept_compared += static_cast<int64_t>(keep.size());
    }
  }
  CHECK(kept_compared > 0);  // selection was on
  const double total = get("total").item<double>(), padded_total = get("padded.total").item<double>();
  double worst_grad = 0;
  int64_t gradients = 0;
  for (const auto& name : stored.keys()) {
    if (name.rfind("grad.", 0) != 0) continue;
    ++gradients;
    worst_grad = std::max(worst_grad, checked_diff(get(name), get("padded." + name)));
  }
  std::cout << recipe << " packed vs padded: per-residue losses " << worst_loss << ", total " << total << " vs "
            << padded_total << ", gradients of " << gradients << " tensors " << worst_grad << " (scaled max diff)\n";
  CHECK(worst_loss < kTolerance);
  CHECK(std::isfinite(total));
  CHECK(std::abs(total - padded_total) < kTolerance * std::max(1.0, std::abs(total)));
  CHECK(gradients > 10);
  CHECK(worst_grad < kTolerance);
  fs::remove_all(root);
  fs::remove_all(reference.parent_path());
}

}  // namespace

TEST_CASE("trainer, ESM2: packed and padded micro-batches give the same losses, selection, total and gradients",
          "[packing][training]") {
  check_trainer_packing("saesm2_8m.toml", "reference_esm2_8m.toml",
                        test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16", "packing-esm2");
}

TEST_CASE("trainer, AMPLIFY: packed and padded micro-batches give the same losses, selection, total and gradients",
          "[packing][training]") {
  check_trainer_packing("saamplify_120m.toml", "reference_amplify_120m.toml", test::fixtures_dir() / "amplify_tiny",
                        "packing-amplify");
}
