// AMPLIFY parity against golden outputs of AMPLIFY's own code, batching invariance, tokenizer, contacts.
#include <catch2/catch.hpp>

#include <iostream>
#include <random>

#include "amplify_test_helpers.hpp"
#include "sapling/error.hpp"
#include "sapling/safetensors.hpp"

using sapling::test::scaled_max_diff;

namespace {

constexpr double kTolerance = 1e-5;

// Rows of [B, T, ...] at non-pad tokens, flattened to [N, ...].
torch::Tensor real_rows(const torch::Tensor& x, const torch::Tensor& mask) { return x.index({mask}); }

double report(const std::string& what, const torch::Tensor& ours, const torch::Tensor& reference) {
  REQUIRE(ours.sizes() == reference.sizes());
  const double diff = scaled_max_diff(ours, reference);
  std::cout << "amplify parity " << what << ": scaled max diff " << diff << "\n";
  INFO(what << " scaled max diff " << diff);
  CHECK(diff <= kTolerance);
  return diff;
}

std::string random_protein(size_t length, uint32_t seed) {
  static const std::string residues = "ACDEFGHIKLMNPQRSTVWY";
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, residues.size() - 1);
  std::string s;
  for (size_t i = 0; i < length; ++i) s += residues[pick(rng)];
  return s;
}

}  // namespace

TEST_CASE("amplify matches AMPLIFY's reference outputs on the tiny fixture", "[amplify][parity]") {
  auto model = amplify_test::load(amplify_test::fixture_model_dir());
  const sapling::SafetensorsFile io(amplify_test::fixture_io_file());
  const auto ids = io.get("input_ids").clone();
  const auto mask = io.get("attention_mask").to(torch::kBool);
  const auto labels = io.get("labels").clone();
  const auto L = model->num_layers();
  REQUIRE(L == 2);

  sapling::ForwardRequest request;
  request.hidden_states = request.attentions = request.logits = true;
  auto out = model->forward(ids, mask, request);

  report("logits", real_rows(out.logits, mask), real_rows(io.get("logits"), mask));
  REQUIRE(static_cast<int64_t>(out.hidden_states.size()) == L);
  for (int64_t i = 0; i < L; ++i) {
    const auto key = "hidden_states." + std::to_string(i);
    report(key, real_rows(out.hidden_states[i], mask), real_rows(io.get(key), mask));
  }
  report("last_hidden (= last block output, before the final norm)", real_rows(out.last_hidden, mask),
         real_rows(io.get("hidden_states." + std::to_string(L - 1)), mask));

  REQUIRE(static_cast<int64_t>(out.attentions.size()) == L);
  const auto lengths = mask.sum(1);
  for (int64_t i = 0; i < L; ++i) {
    const auto key = "attentions." + std::to_string(i);
    const auto reference = io.get(key);
    double worst = 0;
    for (int64_t b = 0; b < ids.size(0); ++b) {
      const auto n = lengths[b].item<int64_t>();
      // Real query rows over all keys: padded keys must get zero weight in both.
      const auto ours_b = out.attentions[i][b].slice(1, 0, n);
      const auto ref_b = reference[b].slice(1, 0, n);
      worst = std::max(worst, scaled_max_diff(ours_b, ref_b));
    }
    std::cout << "amplify parity " << key << ": scaled max diff " << worst << "\n";
    CHECK(worst <= kTolerance);
  }

  // Masked-LM loss and its gradients.
  const auto V = out.logits.size(-1);
  auto loss = torch::nn::functional::cross_entropy(
      out.logits.reshape({-1, V}), labels.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  report("mlm_loss", loss.detach().reshape({1}), io.get("mlm_loss"));
  model->zero_grad();
  loss.backward();
  auto params = model->named_parameters();
  int gradients = 0;
  for (const auto& key : io.keys()) {
    if (key.rfind("grad.", 0) != 0) continue;
    const auto name = key.substr(5);
    REQUIRE(params.contains(name));
    REQUIRE(params[name].grad().defined());
    report(key, params[name].grad(), io.get(key));
    ++gradients;
  }
  CHECK(gradients == 5);
}

TEST_CASE("amplify representation() maps layers 1..L to block outputs and rejects layer 0", "[amplify]") {
  auto model = amplify_test::load(amplify_test::fixture_model_dir());
  const auto batch = model->tokenizer().batch({"MKTAYIAKQRQISFVKSHFSRQ"});
  sapling::ForwardRequest request;
  request.hidden_states = true;
  torch::NoGradGuard no_grad;
  const auto out = model->forward(batch.ids, batch.mask, request);
  CHECK(torch::equal(model->representation(out, 1), out.hidden_states[0]));
  CHECK(torch::equal(model->representation(out, 2), out.hidden_states[1]));
  CHECK(torch::equal(model->representation(out, -1), out.last_hidden));
  CHECK(torch::equal(model->representation(out, -2), out.hidden_states[0]));
  CHECK_THROWS_AS(model->representation(out, 0), sapling::Error);
  CHECK_THROWS_WITH(model->representation(out, 0), Catch::Contains("embedding"));
  CHECK_THROWS_AS(model->representation(out, -3), sapling::Error);
  CHECK_THROWS_AS(model->representation(out, 3), sapling::Error);
  sapling::ForwardRequest bare;
  const auto without = model->forward(batch.ids, batch.mask, bare);
  CHECK_THROWS_WITH(model->representation(without, 1), Catch::Contains("hidden_states"));
}

TEST_CASE("amplify batched outputs equal single-sequence outputs", "[amplify][batching]") {
  auto model = amplify_test::load(amplify_test::fixture_model_dir());
  const std::vector<std::string> sequences = {random_protein(700, 1), "MKTAYIAKQRQ", random_protein(123, 2), "M"};
  const auto& tokenizer = model->tokenizer();
  sapling::ForwardRequest request;
  request.hidden_states = request.attentions = request.logits = true;
  torch::NoGradGuard no_grad;
  const auto batch = tokenizer.batch(sequences);
  const auto batched = model->forward(batch.ids, batch.mask, request);
  double worst = 0;
  for (size_t b = 0; b < sequences.size(); ++b) {
    const auto one = tokenizer.batch({sequences[b]});
    const auto single = model->forward(one.ids, one.mask, request);
    const auto n = one.ids.size(1);
    const auto row = static_cast<int64_t>(b);
    worst = std::max(worst, scaled_max_diff(batched.logits[row].slice(0, 0, n), single.logits[0]));
    worst = std::max(worst, scaled_max_diff(batched.last_hidden[row].slice(0, 0, n), single.last_hidden[0]));
    for (int64_t i = 0; i < model->num_layers(); ++i) {
      worst = std::max(worst, scaled_max_diff(batched.hidden_states[i][row].slice(0, 0, n), single.hidden_states[i][0]));
      const auto probs = batched.attentions[i][row].slice(1, 0, n);
      worst = std::max(worst, scaled_max_diff(probs.slice(2, 0, n), single.attentions[i][0]));
      // No attention may leak onto padding.
      if (n < batch.ids.size(1)) CHECK(probs.slice(2, n).abs().max().item<float>() == 0.0f);
    }
  }
  std::cout << "amplify batched vs single (lengths 700, 11, 123, 1): scaled max diff " << worst << "\n";
  CHECK(worst <= kTolerance);
}

TEST_CASE("amplify tokenizer follows AMPLIFY's vocabulary", "[amplify][tokenizer]") {
  auto model = amplify_test::load(amplify_test::fixture_model_dir());
  const auto& tokenizer = model->tokenizer();
  REQUIRE(tokenizer.size() == 27);
  CHECK(tokenizer.pad_id() == 0);
  CHECK(tokenizer.unk_id() == 1);
  CHECK(tokenizer.mask_id() == 2);
  CHECK(tokenizer.bos_id() == 3);
  CHECK(tokenizer.eos_id() == 4);
  CHECK(tokenizer.id("|") == 5);
  CHECK(tokenizer.id("L") == 6);
  CHECK(tokenizer.id("C") == 25);
  CHECK(tokenizer.id("B") == 26);
  CHECK(tokenizer.encode("XUZO") == std::vector<int64_t>{3, 1, 1, 1, 1, 4});
  CHECK(tokenizer.encode("ma<mask>|w") == std::vector<int64_t>{3, 22, 7, 2, 5, 24, 4});
  // The fixture's ids were made by AMPLIFY's tokenizer: ours must reproduce them.
  const sapling::SafetensorsFile io(amplify_test::fixture_io_file());
  const auto ids = io.get("input_ids");
  const auto mask = io.get("attention_mask").to(torch::kBool);
  const std::vector<std::string> sequences = {"TTCCPSIVARSNFNVCRLPGTPEAICATYTGCIIIPGATCPGDYAN",
                                              "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG",
                                              "MKTAYIAKQRQISFVKSHFSRQ"};
  auto ours = tokenizer.batch(sequences);
  // Put the fixture's <mask> tokens into our encoding before comparing.
  const auto is_mask = ids.eq(tokenizer.mask_id());
  ours.ids.masked_fill_(is_mask, tokenizer.mask_id());
  CHECK(torch::equal(ours.ids, ids));
  CHECK(torch::equal(ours.mask, mask));
}

TEST_CASE("amplify contacts: shape, symmetry, zero padding, clear errors", "[amplify][contacts]") {
  auto model = amplify_test::load(amplify_test::fixture_model_dir());
  const auto batch = model->tokenizer().batch({"MQIFVKTLTGKTITLEVEPSDTIENV", "MKTAYIAKQR"});
  sapling::ForwardRequest request;
  request.attentions = true;
  torch::NoGradGuard no_grad;
  const auto out = model->forward(batch.ids, batch.mask, request);
  const auto contacts = model->contacts(out, batch.ids, batch.mask);
  REQUIRE(contacts.sizes() == torch::IntArrayRef({2, 26, 26}));
  CHECK(scaled_max_diff(contacts, contacts.transpose(1, 2)) < 1e-6);
  CHECK(contacts[0].min().item<float>() > 0.0f);
  CHECK(contacts[0].max().item<float>() < 1.0f);
  // The second sequence has 10 residues: its rows/columns 10.. (eos, pad) are zero.
  CHECK(contacts[1].slice(0, 10).abs().max().item<float>() == 0.0f);
  CHECK(contacts[1].slice(1, 10).abs().max().item<float>() == 0.0f);
  CHECK(contacts[1].slice(0, 0, 10).slice(1, 0, 10).min().item<float>() > 0.0f);
  // Same contacts when computed alone.
  const auto one = model->tokenizer().batch({"MKTAYIAKQR"});
  const auto alone = model->contacts(model->forward(one.ids, one.mask, request), one.ids, one.mask);
  CHECK(scaled_max_diff(contacts[1].slice(0, 0, 10).slice(1, 0, 10), alone[0]) < 1e-6);
  sapling::ForwardRequest no_maps;
  CHECK_THROWS_WITH(model->contacts(model->forward(one.ids, one.mask, no_maps), one.ids, one.mask),
                    Catch::Contains("attentions"));
}

TEST_CASE("amplify forward rejects malformed input", "[amplify][errors]") {
  auto model = amplify_test::load(amplify_test::fixture_model_dir());
  torch::NoGradGuard no_grad;
  sapling::ForwardRequest request;
  const auto ids = torch::tensor({{3, 6, 27, 4}}, torch::kInt64);
  const auto mask = torch::ones({1, 4}, torch::kBool);
  CHECK_THROWS_WITH(model->forward(ids, mask, request), Catch::Contains("out of range"));
  CHECK_THROWS_AS(model->forward(ids.to(torch::kInt32), mask, request), sapling::Error);
  CHECK_THROWS_AS(model->forward(torch::tensor({{3, 6, 4}}, torch::kInt64), mask, request), sapling::Error);
  const auto long_ids = torch::full({1, model->max_tokens() + 1}, 6, torch::kInt64);
  CHECK_THROWS_WITH(model->forward(long_ids, torch::ones_like(long_ids, torch::kBool), request),
                    Catch::Contains("max_length"));
}
