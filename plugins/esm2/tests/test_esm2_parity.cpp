// ESM2 parity with HF transformers golden outputs (logits, hidden states, attentions, contacts, loss, gradients).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "sapling/interfaces.hpp"
#include "sapling/safetensors.hpp"
#include "esm2_test_support.hpp"
#include "test_support.hpp"

namespace esm2_test = sapling::test::esm2;

using namespace sapling;
using sapling::test::scaled_max_diff;

namespace {

constexpr double kTolerance = 1e-5;

// Max scaled difference over the entries where `keep` is true (pad positions are unspecified).
double masked_diff(const torch::Tensor& actual, const torch::Tensor& expected, const torch::Tensor& keep) {
  REQUIRE(actual.sizes() == expected.sizes());
  const auto k = keep.expand_as(expected);
  return scaled_max_diff(actual.detach().masked_select(k), expected.masked_select(k));
}

void check(const std::string& what, double diff) {
  std::cout << "  " << what << ": scaled max diff " << diff << "\n";
  INFO(what << ": scaled max diff " << diff);
  CHECK(diff <= kTolerance);
}

void check_fixture(const std::filesystem::path& fixtures, const std::string& model_folder, const std::string& io_file) {
  std::cout << "ESM2 parity: " << model_folder << " vs " << io_file << "\n";
  auto model = esm2_test::load(fixtures / model_folder);
  SafetensorsFile io(fixtures / io_file);

  const auto ids = io.get("input_ids").to(torch::kInt64);
  const auto mask = io.get("attention_mask").to(torch::kBool);
  const auto labels = io.get("labels").to(torch::kInt64);
  const int64_t B = ids.size(0), T = ids.size(1);

  // The tokenizer reproduces the fixture's ids from the recorded sequences and masked positions.
  {
    const auto meta = io.metadata();
    const auto sequences = nlohmann::json::parse(meta.at("sequences"));
    const auto masked = nlohmann::json::parse(meta.at("masked_positions_0based"));
    std::vector<std::vector<int64_t>> encoded;
    for (size_t b = 0; b < sequences.size(); ++b) {
      auto e = model->tokenizer().encode(sequences[b].get<std::string>());
      for (const auto& pos : masked.at(std::to_string(b))) e[pos.get<size_t>() + 1] = model->tokenizer().mask_id();
      encoded.push_back(e);
    }
    const auto batch = model->tokenizer().pad(encoded);
    CHECK(torch::equal(batch.ids, ids));
    CHECK(torch::equal(batch.mask, mask));
  }

  ForwardRequest request;
  request.hidden_states = true;
  request.attentions = true;
  model->zero_grad();
  auto out = model->forward(ids, mask, request);

  const auto tokens = mask.unsqueeze(-1);  // [B, T, 1]
  check("logits", masked_diff(out.logits, io.get("logits"), tokens));
  REQUIRE(out.hidden_states.size() == static_cast<size_t>(model->num_layers() + 1));
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    check("hidden_states." + std::to_string(i),
          masked_diff(out.hidden_states[i], io.get("hidden_states." + std::to_string(i)), tokens));
  check("last_hidden_state", masked_diff(out.last_hidden, io.get("last_hidden_state"), tokens));
  CHECK(torch::equal(model->representation(out, -1), out.last_hidden));
  CHECK(torch::equal(model->representation(out, 0), out.hidden_states[0]));

  const auto pairs = (mask.unsqueeze(2) & mask.unsqueeze(1)).unsqueeze(1);  // [B, 1, T, T]
  REQUIRE(out.attentions.size() == static_cast<size_t>(model->num_layers()));
  for (size_t i = 0; i < out.attentions.size(); ++i)
    check("attentions." + std::to_string(i),
          masked_diff(out.attentions[i], io.get("attentions." + std::to_string(i)), pairs));

  const auto contacts = model->contacts(out, ids, mask);
  REQUIRE(contacts.sizes() == torch::IntArrayRef({B, T - 2, T - 2}));
  const auto residues = (mask & ids.ne(model->tokenizer().eos_id())).slice(1, 1, T - 1);
  check("contacts", masked_diff(contacts, io.get("contacts"), residues.unsqueeze(2) & residues.unsqueeze(1)));
  // Rows of padding are zero, as the interface promises.
  CHECK(contacts.masked_select(residues.logical_not().unsqueeze(2).expand_as(contacts)).abs().max().item<float>() == 0.0f);

  const auto loss = torch::nn::functional::cross_entropy(
      out.logits.reshape({-1, out.logits.size(-1)}), labels.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  check("mlm_loss", scaled_max_diff(loss.detach().reshape({1}), io.get("mlm_loss")));

  loss.backward();
  const auto params = model->named_parameters();
  int checked = 0;
  for (const auto& key : io.keys()) {
    if (key.rfind("grad.", 0) != 0) continue;
    const auto name = key.substr(5);
    const auto* param = params.find(name);
    INFO("parameter " << name);
    REQUIRE(param != nullptr);
    REQUIRE(param->grad().defined());
    check(key, scaled_max_diff(param->grad(), io.get(key)));
    ++checked;
  }
  CHECK(checked >= 3);
}

}  // namespace

TEST_CASE("esm2 matches HF transformers on esm2_tiny", "[esm2][parity]") {
  check_fixture(sapling::test::fixtures_dir(), "esm2_tiny", "esm2_tiny_io.safetensors");
}

TEST_CASE("esm2 loads the transformers-5 save layout (gamma/beta, shared rotary buffer)", "[esm2][parity]") {
  check_fixture(sapling::test::fixtures_dir(), "esm2_tiny_tf5_save", "esm2_tiny_io.safetensors");
}

TEST_CASE("esm2 matches HF transformers at the 8M model's widths (esm2_w320)", "[esm2][parity]") {
  SAPLING_REQUIRE_DATA("golden_esm2_w320");
  check_fixture(sapling::test::data_path("golden_esm2_w320"), "esm2_w320", "esm2_w320_io.safetensors");
}

TEST_CASE("esm2 parameter names are the HF checkpoint keys", "[esm2]") {
  const auto dir = sapling::test::fixtures_dir() / "esm2_tiny";
  auto model = esm2_test::load(dir);
  SafetensorsFile file(dir / "model.safetensors");
  std::set<std::string> stored;
  for (const auto& k : file.keys())
    if (k != "esm.embeddings.position_embeddings.weight") stored.insert(k);
  std::set<std::string> ours;
  for (const auto& p : model->named_parameters()) ours.insert(p.key());
  for (const auto& b : model->named_buffers()) ours.insert(b.key());
  CHECK(ours == stored);
  for (const char* key : {"esm.embeddings.word_embeddings.weight", "esm.encoder.layer.0.attention.self.query.weight",
                          "lm_head.dense.weight", "lm_head.bias", "esm.contact_head.regression.weight"})
    CHECK(ours.count(key) == 1);
}

TEST_CASE("esm2 presets build randomly initialised models of the released sizes", "[esm2]") {
  sapling::test::load_build_plugins();
  Options options;
  options.set("preset", std::string("esm2_t12_35M_UR50D"));
  auto model = SequenceEncoderRegistry::instance().create("esm2", options);
  CHECK(model->family() == "esm2");
  CHECK(model->num_layers() == 12);
  CHECK(model->hidden_size() == 480);
  CHECK(model->num_heads() == 20);
  CHECK(model->pretrained_tokens() == 1024);  // fair-esm's 1022 residues + BOS/EOS
  CHECK(model->max_tokens() == kNoTokenLimit);  // rotary: no learned limit
  CHECK(model->tokenizer().size() == 33);
  CHECK(model->tokenizer().token(32) == "<mask>");
  int64_t count = 0;
  for (const auto& p : model->parameters()) count += p.numel();
  // Embedding + 12 x (q,k,v,o + 2 LN + fc1 + fc2) + final LN + LM head (dense, LN, bias; decoder tied)
  // + contact regression. HF's file also stores 1026 x 480 unused position embeddings.
  const int64_t D = 480, F = 1920, L = 12;
  const int64_t per_layer = 4 * (D * D + D) + 2 * 2 * D + (D * F + F) + (F * D + D);
  const int64_t expected = 33 * D + L * per_layer + 2 * D + (D * D + D + 2 * D + 33) + (L * 20 + 1);
  std::cout << "esm2_t12_35M_UR50D parameters: " << count << "\n";
  CHECK(count == expected);
  // Computed rotary frequencies (head dim 24, base 10000).
  const auto inv_freq = model->named_buffers()["esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq"];
  REQUIRE(inv_freq.numel() == 12);
  CHECK(inv_freq[0].item<float>() == 1.0f);
  CHECK(inv_freq[1].item<float>() == Approx(std::pow(10000.0, -2.0 / 24)).epsilon(1e-6));

  options.set("path", std::string("/nonexistent"));
  CHECK_THROWS_AS(SequenceEncoderRegistry::instance().create("esm2", options), Error);
  CHECK_THROWS_WITH(SequenceEncoderRegistry::instance().create("esm2", Options()), Catch::Contains("preset"));
}
