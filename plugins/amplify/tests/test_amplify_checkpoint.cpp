// AMPLIFY checkpoint I/O: save/load round trip, config.yaml, stored dtypes, and loader errors.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "amplify_test_helpers.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/safetensors.hpp"

using sapling::test::scaled_max_diff;
namespace fs = std::filesystem;

namespace {

sapling::NamedTensors fixture_tensors() {
  const sapling::SafetensorsFile file(amplify_test::fixture_model_dir() / "model.safetensors");
  sapling::NamedTensors out;
  for (const auto& key : file.keys()) out.emplace_back(key, file.get(key).clone());
  return out;
}

// A checkpoint folder with the fixture's config and the given tensors.
fs::path write_checkpoint(const std::string& tag, const sapling::NamedTensors& tensors) {
  const auto dir = sapling::test::temp_dir("amplify-" + tag);
  fs::copy_file(amplify_test::fixture_model_dir() / "config.json", dir / "config.json");
  sapling::save_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

std::string load_error(const fs::path& dir) {
  try {
    amplify_test::load(dir);
  } catch (const sapling::Error& e) {
    std::cout << "amplify loader error (expected): " << e.what() << "\n";
    return e.what();
  }
  FAIL("loading " << dir << " should have failed");
  return "";
}

torch::Tensor fixture_logits(sapling::SequenceEncoder& model) {
  const auto batch = model.tokenizer().batch({"MQIFVKTLTGKTITLEVEPSDTIENV", "MKTAYIAKQR"});
  torch::NoGradGuard no_grad;
  return model.forward(batch.ids, batch.mask, {}).logits;
}

const char* kFixtureYaml = R"(# AMPLIFY configuration, written as the original release does
---
hidden_size: 64
num_hidden_layers: 2
num_attention_heads: 4
intermediate_size: 128
dropout_prob: 0
embedding_init_range: 0.02
decoder_init_range: 0.02
rms_norm: true
norm_eps: 1.0e-05   # RMSNorm epsilon
hidden_act: SwiGLU
layer_norm_after_embedding: false
layer_norm_before_last_layer: true
vocab_size: 27
ffn_bias: false
att_bias: false
pad_token_id: 0
max_length: 2048
_name_: 'AMPLIFY'
)";

}  // namespace

TEST_CASE("amplify save_pretrained / load round trip", "[amplify][checkpoint]") {
  auto model = amplify_test::load(amplify_test::fixture_model_dir());
  const auto dir = sapling::test::temp_dir("amplify-roundtrip");
  model->save_pretrained(dir / "saved");
  REQUIRE(fs::exists(dir / "saved" / "config.json"));
  REQUIRE(fs::exists(dir / "saved" / "model.safetensors"));
  auto reloaded = amplify_test::load(dir / "saved");
  auto a = model->named_parameters();
  auto b = reloaded->named_parameters();
  REQUIRE(a.size() == b.size());
  for (const auto& p : a) {
    INFO(p.key());
    REQUIRE(b.contains(p.key()));
    CHECK(torch::equal(p.value(), b[p.key()]));  // includes the (random) contact head: saved, then loaded
  }
  CHECK(torch::equal(fixture_logits(*model), fixture_logits(*reloaded)));
  // model.safetensors holds AMPLIFY's own keys, as the release's model class expects; the contact head is beside it.
  const sapling::SafetensorsFile saved(dir / "saved" / "model.safetensors");
  const sapling::SafetensorsFile original(amplify_test::fixture_model_dir() / "model.safetensors");
  for (const auto& key : original.keys()) CHECK(saved.contains(key));
  CHECK(saved.keys().size() == original.keys().size());
  const sapling::SafetensorsFile contact_head(dir / "saved" / "contact_head.safetensors");
  CHECK(contact_head.keys() == std::vector<std::string>{"contact_head.regression.bias", "contact_head.regression.weight"});
  // The dtype both transformers versions read; no auto_map, since the fixture has no modelling code to name.
  const auto config = nlohmann::json::parse(sapling::read_file(dir / "saved" / "config.json"));
  CHECK_FALSE(config.contains("auto_map"));
  CHECK(config["torch_dtype"] == "float32");
  CHECK(config["dtype"] == "float32");

  SECTION("the base folder's modelling code is copied into the saved folder") {
    const auto base = dir / "base";
    fs::create_directories(base);
    for (const char* file : {"config.json", "model.safetensors"}) fs::copy_file(dir / "saved" / file, base / file);
    sapling::write_file_atomic(base / "amplify.py", "# the release's modelling code\n");
    auto from_base = amplify_test::load(base);
    from_base->save_pretrained(dir / "again");
    CHECK(sapling::read_file(dir / "again" / "amplify.py") == "# the release's modelling code\n");
    // ... and config.json names it for trust_remote_code (AMPLIFY returns the LM logits: AutoModelForMaskedLM too).
    const auto again = nlohmann::json::parse(sapling::read_file(dir / "again" / "config.json"));
    CHECK(again["auto_map"]["AutoModelForMaskedLM"] == "amplify.AMPLIFY");
    CHECK(again["auto_map"]["AutoConfig"] == "amplify.AMPLIFYConfig");
    CHECK(from_base->card_facts().loading_note.find("carries the base release's modelling code") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("amplify reads the original config.yaml", "[amplify][checkpoint]") {
  const auto dir = sapling::test::temp_dir("amplify-yaml");
  fs::copy_file(amplify_test::fixture_model_dir() / "model.safetensors", dir / "model.safetensors");
  sapling::write_file_atomic(dir / "config.yaml", kFixtureYaml);
  auto from_yaml = amplify_test::load(dir);
  auto from_json = amplify_test::load(amplify_test::fixture_model_dir());
  CHECK(torch::equal(fixture_logits(*from_yaml), fixture_logits(*from_json)));

  SECTION("nested YAML is refused with its line") {
    sapling::write_file_atomic(dir / "config.yaml", std::string(kFixtureYaml) + "optimizer:\n  lr: 1e-3\n");
    CHECK_THAT(load_error(dir), Catch::Contains("config.yaml:21") && Catch::Contains("optimizer"));
  }
  SECTION("a wrongly typed value names key and line") {
    std::string text = kFixtureYaml;
    text.replace(text.find("num_attention_heads: 4"), 22, "num_attention_heads: four");
    sapling::write_file_atomic(dir / "config.yaml", text);
    CHECK_THAT(load_error(dir), Catch::Contains("config.yaml:5") && Catch::Contains("num_attention_heads") &&
                                    Catch::Contains("integer"));
  }
  SECTION("duplicate keys are refused") {
    sapling::write_file_atomic(dir / "config.yaml", std::string(kFixtureYaml) + "hidden_size: 64\n");
    CHECK_THAT(load_error(dir), Catch::Contains("hidden_size") && Catch::Contains("line 3"));
  }
  SECTION("unsupported variants are refused") {
    std::string text = kFixtureYaml;
    text.replace(text.find("rms_norm: true"), 14, "rms_norm: false");
    sapling::write_file_atomic(dir / "config.yaml", text);
    CHECK_THAT(load_error(dir), Catch::Contains("rms_norm"));
  }
  fs::remove_all(dir);
}

TEST_CASE("amplify loads F16 and BF16 checkpoints as float32", "[amplify][checkpoint]") {
  auto reference = amplify_test::load(amplify_test::fixture_model_dir());
  for (auto dtype : {torch::kFloat16, torch::kBFloat16}) {
    auto tensors = fixture_tensors();
    for (auto& t : tensors) t.second = t.second.to(dtype);
    const auto dir = write_checkpoint("dtype", tensors);
    auto model = amplify_test::load(dir);
    auto params = model->named_parameters();
    for (const auto& t : tensors) {
      INFO(t.first);
      CHECK(params[t.first].scalar_type() == torch::kFloat32);
      CHECK(torch::equal(params[t.first], t.second.to(torch::kFloat32)));
    }
    const double diff = scaled_max_diff(fixture_logits(*model), fixture_logits(*reference));
    std::cout << "amplify " << c10::toString(dtype) << "-stored weights: logits scaled max diff vs float32 " << diff
              << "\n";
    CHECK(diff < 0.05);
    fs::remove_all(dir);
  }
}

TEST_CASE("amplify loader reports key and shape mismatches", "[amplify][checkpoint][errors]") {
  SECTION("unexpected key") {
    auto tensors = fixture_tensors();
    tensors.emplace_back("transformer_encoder.0.attention.extra", torch::zeros({4}));
    tensors.emplace_back("lm_head.bias", torch::zeros({27}));
    const auto message = load_error(write_checkpoint("unexpected", tensors));
    CHECK_THAT(message, Catch::Contains("unexpected") && Catch::Contains("transformer_encoder.0.attention.extra") &&
                            Catch::Contains("lm_head.bias"));
  }
  SECTION("missing keys are all listed") {
    auto tensors = fixture_tensors();
    sapling::NamedTensors kept;
    for (auto& t : tensors)
      if (t.first != "decoder.bias" && t.first != "transformer_encoder.1.ffn.w3.weight") kept.push_back(t);
    const auto message = load_error(write_checkpoint("missing", kept));
    CHECK_THAT(message, Catch::Contains("missing") && Catch::Contains("decoder.bias") &&
                            Catch::Contains("transformer_encoder.1.ffn.w3.weight"));
  }
  SECTION("wrong shape names key and both shapes") {
    auto tensors = fixture_tensors();
    for (auto& t : tensors)
      if (t.first == "transformer_encoder.0.q.weight") t.second = torch::zeros({64, 32});
    const auto message = load_error(write_checkpoint("shape", tensors));
    CHECK_THAT(message, Catch::Contains("transformer_encoder.0.q.weight") && Catch::Contains("[64, 32]") &&
                            Catch::Contains("[64, 64]"));
  }
  SECTION("half a contact head") {
    auto tensors = fixture_tensors();
    tensors.emplace_back("contact_head.regression.weight", torch::zeros({1, 8}));
    CHECK_THAT(load_error(write_checkpoint("contact", tensors)), Catch::Contains("contact_head.regression"));
  }
  SECTION("integer tensors") {
    auto tensors = fixture_tensors();
    for (auto& t : tensors)
      if (t.first == "decoder.bias") t.second = torch::zeros({27}, torch::kInt64);
    CHECK_THAT(load_error(write_checkpoint("dtype-int", tensors)), Catch::Contains("decoder.bias") &&
                                                                        Catch::Contains("I64"));
  }
  SECTION("no config") {
    const auto dir = sapling::test::temp_dir("amplify-noconfig");
    CHECK_THAT(load_error(dir), Catch::Contains("config.json") && Catch::Contains("config.yaml"));
  }
}

TEST_CASE("amplify trained contact head is loaded from a checkpoint", "[amplify][checkpoint]") {
  auto tensors = fixture_tensors();
  const auto weight = torch::linspace(-1, 1, 8).reshape({1, 8});
  tensors.emplace_back("contact_head.regression.weight", weight);
  tensors.emplace_back("contact_head.regression.bias", torch::tensor({0.25f}));
  const auto dir = write_checkpoint("contact-full", tensors);
  auto model = amplify_test::load(dir);
  auto params = model->named_parameters();
  CHECK(torch::equal(params["contact_head.regression.weight"], weight));
  CHECK(params["contact_head.regression.bias"].item<float>() == 0.25f);
  fs::remove_all(dir);
}

TEST_CASE("amplify presets and options", "[amplify][options]") {
  auto model = amplify_test::create("preset", "AMPLIFY_120M");
  CHECK(model->family() == "amplify");
  CHECK(model->hidden_size() == 640);
  CHECK(model->num_layers() == 24);
  CHECK(model->num_heads() == 10);
  auto params = model->named_parameters();
  CHECK(params["transformer_encoder.23.ffn.w12.weight"].sizes() == torch::IntArrayRef({2 * 1712, 640}));
  CHECK(params["transformer_encoder.0.ffn.w3.weight"].sizes() == torch::IntArrayRef({640, 1712}));
  CHECK(params["contact_head.regression.weight"].sizes() == torch::IntArrayRef({1, 240}));
  int64_t count = 0;
  for (const auto& p : params)
    if (p.key().rfind("contact_head", 0) != 0) count += p.value().numel();
  std::cout << "amplify AMPLIFY_120M parameters (without contact head): " << count << "\n";
  CHECK(count > 110'000'000);
  CHECK(count < 125'000'000);

  sapling::test::load_build_plugins();
  auto& registry = sapling::SequenceEncoderRegistry::instance();
  sapling::Options both;
  both.set("path", amplify_test::fixture_model_dir().string());
  both.set("preset", std::string("AMPLIFY_350M"));
  CHECK_THROWS_WITH(registry.create("amplify", both), Catch::Contains("not both"));
  CHECK_THROWS_WITH(registry.create("amplify", sapling::Options()), Catch::Contains("preset"));
  CHECK_THROWS_WITH(amplify_test::create("preset", "AMPLIFY_120"), Catch::Contains("AMPLIFY_120M"));
}
