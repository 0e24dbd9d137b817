// Hostile ESM2 checkpoints and inputs: absurd configs refused before any allocation, corrupt weights through
// `sapling embed` (exit 1 naming the file), and a 100k-residue sequence under the truncate and error policies.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/safetensors.hpp"
#include "esm2_test_support.hpp"
#include "test_support.hpp"

namespace esm2_test = sapling::test::esm2;

namespace fs = std::filesystem;
using sapling::test::run_command;

namespace {

using sapling::test::quote;

// A copy of the tiny fixture with an edited config.json.
fs::path tiny_with_config(const std::string& tag, const std::function<void(nlohmann::json&)>& edit) {
  const auto dir = sapling::test::temp_dir("esm2-hostile-" + tag);
  fs::copy_file(esm2_test::tiny_dir() / "model.safetensors", dir / "model.safetensors");
  auto config = nlohmann::json::parse(sapling::read_file(esm2_test::tiny_dir() / "config.json"));
  edit(config);
  sapling::write_file_atomic(dir / "config.json", config.dump(2));
  return dir;
}

}  // namespace

TEST_CASE("esm2: a config.json far larger than its weights is refused before allocating", "[esm2][hostile]") {
  struct Case {
    std::string tag;
    std::function<void(nlohmann::json&)> edit;
  };
  // Each would need tens of GB to TB if the modules were built first.
  const std::vector<Case> cases = {
      {"layers", [](nlohmann::json& c) { c["num_hidden_layers"] = 1000000; }},
      {"hidden", [](nlohmann::json& c) { c["hidden_size"] = 1 << 20; c["num_attention_heads"] = 1 << 10; }},
      {"ffn", [](nlohmann::json& c) { c["intermediate_size"] = int64_t{1} << 40; }},
  };
  for (const auto& c : cases) {
    INFO(c.tag);
    const auto t0 = std::chrono::steady_clock::now();
    const auto message = esm2_test::load_error(tiny_with_config(c.tag, c.edit));
    CHECK_THAT(message, Catch::Contains("config.json") && Catch::Contains("does not belong to these weights"));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10);
  }
  const auto message = esm2_test::load_error(tiny_with_config("positions", [](nlohmann::json& c) {
    c["max_position_embeddings"] = int64_t{1} << 40;
  }));
  CHECK_THAT(message, Catch::Contains("config.json: 'max_position_embeddings'"));
  // A moderate mismatch still gets the precise key-by-key report.
  CHECK_THAT(esm2_test::load_error(tiny_with_config("three", [](nlohmann::json& c) { c["num_hidden_layers"] = 3; })),
             Catch::Contains("missing keys"));
}

TEST_CASE("sapling embed: corrupt checkpoints fail with exit 1 naming the file", "[esm2][hostile][cli]") {
  const auto dir = sapling::test::temp_dir("esm2-hostile-cli");
  std::ofstream(dir / "in.fasta") << ">a\nMKTAYIAKQR\n";
  const auto embed = [&](const fs::path& model) {
    return run_command(sapling::test::sapling_exe() + " embed --threads 2 --model " + quote(model) + " --fasta " +
                       quote(dir / "in.fasta") + " --out " + quote(dir / "out.safetensors"));
  };
  const std::string weights = sapling::read_file(esm2_test::tiny_dir() / "model.safetensors");
  struct Case {
    std::string tag, bytes, expected;
  };
  const std::vector<Case> cases = {
      {"truncated", weights.substr(0, weights.size() - 100), "outside the data area"},
      {"empty", "", "shorter than the 8-byte header length"},
      {"huge-header", std::string("\xff\xff\xff\xff\xff\xff\xff\x0f", 8) + weights.substr(8), "exceeds the file size"},
      {"not-json", std::string("\x10\0\0\0\0\0\0\0", 8) + "{{{{{{{{{{{{{{{{" + weights.substr(24), "invalid JSON"},
  };
  for (const auto& c : cases) {
    INFO(c.tag);
    const auto model = dir / c.tag;
    fs::create_directories(model);
    fs::copy_file(esm2_test::tiny_dir() / "config.json", model / "config.json");
    sapling::write_file_atomic(model / "model.safetensors", c.bytes);
    const auto r = embed(model);
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains((model / "model.safetensors").string()) && Catch::Contains(c.expected));
  }
  // config.json that is not JSON, or not an object.
  for (const std::string& text : {std::string("{\"hidden_size\": "), std::string("[1, 2]")}) {
    const auto model = dir / ("config" + std::to_string(text.size()));
    fs::create_directories(model);
    fs::copy_file(esm2_test::tiny_dir() / "model.safetensors", model / "model.safetensors");
    sapling::write_file_atomic(model / "config.json", text);
    const auto r = embed(model);
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("config.json"));
  }
  fs::remove_all(dir);
}

TEST_CASE("sapling embed: a 100k-residue sequence is truncated to 1022 with a warning, or refused", "[esm2][hostile][cli]") {
  const auto dir = sapling::test::temp_dir("esm2-hostile-long");
  {
    std::ofstream f(dir / "long.fasta");
    f << ">huge\n";
    const std::string motif = "MQIFVKTLTGKTITLEVEPS";
    for (int i = 0; i < 5000; ++i) f << motif << "\n";  // 100,000 residues
    f << ">small\nMKTAYIAKQR\n";
  }
  const std::string base = sapling::test::sapling_exe() + " embed --threads 2 --model " + quote(esm2_test::bundled_model()) +
                           " --fasta " + quote(dir / "long.fasta") + " --include per_tok,mean";
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_command(base + " --out " + quote(dir / "t.safetensors"));
  std::cout << "embed of a 100k-residue sequence (truncated): "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("'huge' has 100000 residues; truncated to the first 1022"));
  sapling::SafetensorsFile out(dir / "t.safetensors");
  CHECK(out.get("huge/per_tok").size(0) == 1022);
  CHECK(out.get("small/per_tok").size(0) == 10);

  const auto refused = run_command(base + " --long error --out " + quote(dir / "e.safetensors"));
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("sequence 'huge' (line 1) has 100000 residues, over the limit of 1022"));
  CHECK_FALSE(fs::exists(dir / "e.safetensors"));
  fs::remove_all(dir);
}

// AMPLIFY builds its model from the config before comparing keys, like ESM2; reached through the registry
// here so that one extra translation unit covers both loaders.
TEST_CASE("amplify: a config far larger than its weights is refused before allocating", "[amplify][hostile]") {
  sapling::test::load_build_plugins();
  if (!sapling::SequenceEncoderRegistry::instance().contains("amplify")) {
    SAPLING_SKIP("the amplify plugin is not built");
  }
  const auto fixture = sapling::test::fixtures_dir() / "amplify_tiny";
  const auto dir = sapling::test::temp_dir("amplify-hostile");
  fs::copy_file(fixture / "model.safetensors", dir / "model.safetensors");
  auto config = nlohmann::json::parse(sapling::read_file(fixture / "config.json"));
  config["num_hidden_layers"] = 100000;
  sapling::write_file_atomic(dir / "config.json", config.dump(2));
  sapling::Options options;
  options.set("path", dir.string());
  const auto t0 = std::chrono::steady_clock::now();
  try {
    sapling::SequenceEncoderRegistry::instance().create("amplify", options);
    FAIL("an absurd AMPLIFY config was accepted");
  } catch (const sapling::Error& e) {
    std::cout << "  amplify loader error (expected): " << e.what() << "\n";
    CHECK_THAT(e.what(), Catch::Contains("does not belong to these weights"));
  }
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10);
  fs::remove_all(dir);
}
