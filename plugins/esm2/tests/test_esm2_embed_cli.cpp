// `sapling embed` end to end with ESM2: reproduces the fixture's last hidden state and contacts
// through the CLI, batching does not change results, and the long-sequence and error policies hold.
#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <nlohmann/json.hpp>

#include "sapling/safetensors.hpp"
#include "esm2_test_support.hpp"
#include "test_support.hpp"

namespace esm2_test = sapling::test::esm2;

using sapling::test::run_command;
using sapling::test::scaled_max_diff;

namespace {

// The fixture's three sequences with <mask> at the recorded positions, as FASTA.
std::filesystem::path fixture_fasta(const std::filesystem::path& dir, const sapling::SafetensorsFile& io) {
  const auto sequences = nlohmann::json::parse(io.metadata().at("sequences"));
  const auto masked = nlohmann::json::parse(io.metadata().at("masked_positions_0based"));
  std::ofstream out(dir / "fixture.fasta");
  for (size_t b = 0; b < sequences.size(); ++b) {
    std::string seq = sequences[b].get<std::string>();
    std::vector<size_t> positions;
    for (const auto& p : masked.at(std::to_string(b))) positions.push_back(p.get<size_t>());
    std::sort(positions.rbegin(), positions.rend());
    for (size_t p : positions) seq.replace(p, 1, "<mask>");
    out << ">seq" << b << " fixture sequence " << b << "\n" << seq << "\n";
  }
  return dir / "fixture.fasta";
}

std::string embed(const std::string& args) {
  // float32 whatever the CPU: these tests compare against fixtures and against each other at float32 tolerances.
  auto r = run_command(sapling::test::sapling_exe() + " embed --threads 2 --dtype fp32 " + args);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return r.output;
}

// short (10) and medium (159 residues), and with `with_long` an 800-residue one (over the truncation limits).
std::filesystem::path three_lengths_fasta(const std::filesystem::path& dir, bool with_long) {
  std::ofstream f(dir / "in.fasta");
  f << ">short\nMKTAYIAKQR\n>medium\n" << std::string(150, 'A') << "LLKRVEGGW\n";
  if (with_long) {
    f << ">long\n";
    for (int i = 0; i < 40; ++i) f << "MQIFVKTLTGKTITLEVEPS";
    f << "\n";
  }
  return dir / "in.fasta";
}

}  // namespace

TEST_CASE("sapling embed reproduces the esm2_w320 fixture's last hidden state and contacts", "[esm2][embed][cli]") {
  SAPLING_REQUIRE_DATA("golden_esm2_w320");
  const auto golden = sapling::test::data_path("golden_esm2_w320");
  const auto dir = sapling::test::temp_dir("embed");
  sapling::SafetensorsFile io(golden / "esm2_w320_io.safetensors");
  const auto fasta = fixture_fasta(dir, io);
  embed("--model " + (golden / "esm2_w320").string() + " --fasta " + fasta.string() + " --out " +
        (dir / "e.safetensors").string() + " --include per_tok,mean,bos,contacts");
  sapling::SafetensorsFile out(dir / "e.safetensors");
  CHECK(out.metadata().at("family") == "esm2");
  const auto last = io.get("last_hidden_state");
  const auto contacts = io.get("contacts");
  const auto mask = io.get("attention_mask");
  double worst_hidden = 0, worst_contacts = 0, worst_pool = 0;
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t L = mask[b].sum().item<int64_t>() - 2;
    const std::string label = "seq" + std::to_string(b);
    auto per_tok = out.get(label + "/per_tok");
    REQUIRE(per_tok.sizes() == std::vector<int64_t>{L, 320});
    worst_hidden = std::max(worst_hidden, scaled_max_diff(per_tok, last[b].slice(0, 1, L + 1)));
    worst_pool = std::max(worst_pool, scaled_max_diff(out.get(label + "/mean"), last[b].slice(0, 1, L + 1).mean(0)));
    worst_pool = std::max(worst_pool, scaled_max_diff(out.get(label + "/bos"), last[b][0]));
    worst_contacts = std::max(worst_contacts, scaled_max_diff(out.get(label + "/contacts"), contacts[b].slice(0, 0, L).slice(1, 0, L)));
  }
  std::cout << "embed CLI vs esm2_w320 fixture: per_tok " << worst_hidden << ", mean/bos " << worst_pool
            << ", contacts " << worst_contacts << " (tolerance 1e-5)\n";
  CHECK(worst_hidden <= 1e-5);
  CHECK(worst_pool <= 1e-5);
  CHECK(worst_contacts <= 1e-5);
}

// The embed cases below are separate tests so ctest spreads them over the cores (together they ran 100 s).
TEST_CASE("sapling embed: batch size does not change outputs", "[esm2][embed][cli]") {
  const auto dir = sapling::test::temp_dir("embed2");
  const auto model = esm2_test::bundled_model().string();
  const auto in = three_lengths_fasta(dir, true).string();
  embed("--model " + model + " --fasta " + in + " --out " + (dir / "big.safetensors").string() + " --include per_tok,contacts");
  embed("--model " + model + " --fasta " + in + " --out " + (dir / "small.safetensors").string() +
        " --include per_tok,contacts --toks-per-batch 16");
  sapling::SafetensorsFile a(dir / "big.safetensors"), b(dir / "small.safetensors");
  double worst = 0;
  for (const auto& key : a.keys()) worst = std::max(worst, scaled_max_diff(a.get(key), b.get(key)));
  std::cout << "embed: one batch vs one sequence per batch, scaled max diff " << worst << "\n";
  CHECK(worst <= 1e-5);
}

TEST_CASE("sapling embed: layers, npy output, and --encoder with its old name --plugin", "[esm2][embed][cli]") {
  const auto dir = sapling::test::temp_dir("embed-layers");
  const auto model = esm2_test::bundled_model().string();
  const auto in = three_lengths_fasta(dir, false).string();
  embed("--model " + model + " --fasta " + in + " --out " + (dir / "last.safetensors").string() + " --include per_tok");
  // Several layers get '@<layer>' names; layer 6 of 6 equals the default last layer.
  embed("--model " + model + " --fasta " + in + " --out " + (dir / "layers.safetensors").string() +
        " --include mean --repr-layers 0,3,-1");
  sapling::SafetensorsFile last(dir / "last.safetensors"), layers(dir / "layers.safetensors");
  CHECK(layers.contains("short/mean@0"));
  CHECK(layers.contains("short/mean@3"));
  CHECK(scaled_max_diff(layers.get("short/mean@6"), last.get("short/per_tok").mean(0)) <= 1e-6);

  embed("--model " + model + " --fasta " + in + " --out " + (dir / "npy").string() + " --include mean --format npy");
  CHECK(std::filesystem::file_size(dir / "npy" / "short.mean.npy") == 128 + 320 * 4);

  // --encoder names the registered encoder; its old name --plugin still works, with a warning.
  const auto named = embed("--model " + model + " --fasta " + in + " --out " + (dir / "named.safetensors").string() +
                           " --include mean --encoder esm2");
  CHECK_THAT(named, !Catch::Contains("--plugin is now called --encoder"));
  const auto legacy = embed("--model " + model + " --fasta " + in + " --out " + (dir / "legacy.safetensors").string() +
                            " --include mean --plugin esm2");
  CHECK_THAT(legacy, Catch::Contains("--plugin is now called --encoder"));
  CHECK(scaled_max_diff(sapling::SafetensorsFile(dir / "named.safetensors").get("short/mean"),
                        sapling::SafetensorsFile(dir / "legacy.safetensors").get("short/mean")) == 0);
  auto both = run_command(sapling::test::sapling_exe() + " embed --model " + model + " --fasta " + in + " --out " +
                          (dir / "both.safetensors").string() + " --encoder esm2 --plugin esm2");
  CHECK(both.exit_code == 1);
  CHECK_THAT(both.output, Catch::Contains("--encoder and its old name --plugin are both given"));
}

TEST_CASE("sapling embed: long sequences truncated with a warning, windowed, or refused", "[esm2][embed][cli]") {
  const auto dir = sapling::test::temp_dir("embed-long");
  const auto model = esm2_test::bundled_model().string();
  const auto in = three_lengths_fasta(dir, true).string();
  // Truncation warns; windows cover the whole sequence; 'error' refuses.
  auto truncated = embed("--model " + model + " --fasta " + in + " --out " + (dir / "t.safetensors").string() +
                         " --include per_tok --truncation 100");
  CHECK_THAT(truncated, Catch::Contains("'long' has 800 residues; truncated to the first 100"));
  CHECK(sapling::SafetensorsFile(dir / "t.safetensors").get("long/per_tok").size(0) == 100);
  embed("--model " + model + " --fasta " + in + " --out " + (dir / "w.safetensors").string() +
        " --include per_tok,contacts --truncation 300 --long window");
  sapling::SafetensorsFile w(dir / "w.safetensors");
  CHECK(w.get("long/per_tok").size(0) == 800);
  CHECK(w.get("long/contacts").size(0) == 800);
  // The first window's residues far from any overlap equal the truncated run.
  embed("--model " + model + " --fasta " + in + " --out " + (dir / "t300.safetensors").string() +
        " --include per_tok --truncation 300");
  CHECK(scaled_max_diff(w.get("long/per_tok").slice(0, 0, 150),
                        sapling::SafetensorsFile(dir / "t300.safetensors").get("long/per_tok").slice(0, 0, 150)) <= 1e-5);
  auto refused = run_command(sapling::test::sapling_exe() + " embed --model " + model + " --fasta " + in +
                             " --out " + (dir / "x.safetensors").string() + " --truncation 100 --long error");
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("sequence 'medium' (line 3) has 159 residues, over the limit of 100"));
}

// Issue #19's inference budget for CPU bf16 (autocast: matrix products in bf16, norms and softmax in float32).
TEST_CASE("sapling embed --dtype bf16 on the CPU stays within the accuracy budget, auto (the default) follows the CPU's units",
          "[esm2][embed][cli][dtype]") {
  const auto dir = sapling::test::temp_dir("embed-dtype");
  const auto model = esm2_test::bundled_model().string();
  const auto in = three_lengths_fasta(dir, true).string();
  const auto run = [&](const std::string& env, const std::string& dtype, const std::string& name,
                       const std::string& extra = "") {
    auto r = run_command(env + " " + sapling::test::sapling_exe() + " embed --threads 2 --model " + model +
                         " --fasta " + in + " --out " + (dir / name).string() + " --include per_tok,mean" +
                         (dtype.empty() ? std::string() : " --dtype " + dtype) + extra);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    return r.output;
  };
  const auto fp32_log = run("", "fp32", "fp32.safetensors", " --mfu");
  CHECK_THAT(fp32_log, Catch::Contains("compute: float32 on cpu"));
  {
    // --mfu: the model FLOP/s of the run against the measured float32 peak. Sequences of 10, 159 and 800
    // residues plus BOS and EOS each: at least 975 tokens (more with padding).
    INFO(fp32_log);
    std::smatch m;
    REQUIRE(std::regex_search(fp32_log, m, std::regex(R"(parameters: (\d+); tokens: (\d+); model TFLOP/s: ([0-9.e-]+); MFU: ([0-9.e-]+)% of ([0-9.e-]+) TFLOP/s \(float32 on cpu)")));
    CHECK(std::stoll(m[1]) == 7512474);
    CHECK(std::stoll(m[2]) >= 975);
    CHECK(std::stod(m[4]) > 0);
    CHECK(std::stod(m[5]) > 0);
  }
  CHECK_THAT(run("", "bf16", "bf16.safetensors"), Catch::Contains("compute: bf16 autocast on cpu"));
  sapling::SafetensorsFile fp32(dir / "fp32.safetensors"), bf16(dir / "bf16.safetensors");
  const auto cosine = [](const torch::Tensor& a, const torch::Tensor& b, int64_t dim) {
    return torch::nn::functional::cosine_similarity(a, b, torch::nn::functional::CosineSimilarityFuncOptions().dim(dim));
  };
  CHECK(bf16.metadata().at("dtype") == "bf16");
  std::vector<torch::Tensor> cosines;
  double worst_mean = 1;
  for (const std::string label : {"short", "medium", "long"}) {
    const auto a = fp32.get(label + "/per_tok"), b = bf16.get(label + "/per_tok");
    REQUIRE(b.scalar_type() == torch::kFloat32);
    cosines.push_back(cosine(a, b, -1));
    worst_mean = std::min(worst_mean, cosine(fp32.get(label + "/mean"), bf16.get(label + "/mean"), 0).item<double>());
  }
  const auto all = torch::cat(cosines);
  const double mean = all.mean().item<double>(), least = all.min().item<double>();
  std::cout << "embed bf16 vs float32, per-residue cosine: mean " << mean << " (budget >= 0.999), min " << least
            << " (budget >= 0.99); mean-pooled min " << worst_mean << "\n";
  CHECK(mean >= 0.999);
  CHECK(least >= 0.99);

  // auto: float32 where the CPU has no bf16 units, bf16 where it has (detection forced both ways).
  CHECK_THAT(run("SAPLING_CPU_BF16=0", "auto", "auto0.safetensors"), Catch::Contains("compute: float32 on cpu"));
  CHECK_THAT(run("SAPLING_CPU_BF16=1", "auto", "auto1.safetensors"),
             Catch::Contains("compute: bf16 autocast on cpu") && Catch::Contains("forced by SAPLING_CPU_BF16"));
  sapling::SafetensorsFile auto0(dir / "auto0.safetensors"), auto1(dir / "auto1.safetensors");
  // The same path as the explicit runs: within float32 run-to-run noise of them, far below bf16's error. Not bitwise:
  // the torch wheel's MKL is not bitwise reproducible across processes (a fresh CI root saw 2.6e-5 scaled).
  const double bf16_error = scaled_max_diff(bf16.get("long/per_tok"), fp32.get("long/per_tok"));
  const double auto0_error = scaled_max_diff(auto0.get("long/per_tok"), fp32.get("long/per_tok"));
  const double auto1_error = scaled_max_diff(auto1.get("long/per_tok"), bf16.get("long/per_tok"));
  std::cout << "auto against the explicit runs: float32 " << auto0_error << ", bf16 " << auto1_error
            << " (bf16 against float32: " << bf16_error << ")\n";
  CHECK(auto0_error < 1e-4);
  CHECK(auto0_error < bf16_error / 20);
  CHECK(auto1_error < bf16_error / 20);
  // auto is the default.
  CHECK_THAT(run("SAPLING_CPU_BF16=0", "", "default0.safetensors"), Catch::Contains("compute: float32 on cpu"));
  CHECK_THAT(run("SAPLING_CPU_BF16=1", "", "default1.safetensors"), Catch::Contains("compute: bf16 autocast on cpu"));

  const auto refused = run_command(sapling::test::sapling_exe() + " embed --model " + model + " --fasta " + in +
                                   " --out " + (dir / "x.safetensors").string() + " --dtype fp16");
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("--dtype fp16 needs --device cuda; on the CPU use bf16"));
  const auto bad_env = run_command("SAPLING_CPU_BF16=yes " + sapling::test::sapling_exe() + " embed --model " + model +
                                   " --fasta " + in + " --out " + (dir / "x.safetensors").string() + " --dtype auto");
  CHECK(bad_env.exit_code == 1);
  CHECK_THAT(bad_env.output, Catch::Contains("SAPLING_CPU_BF16='yes': expected 1"));
}

TEST_CASE("sapling embed rejects bad input with one line and exit code 1", "[esm2][embed][cli]") {
  const auto dir = sapling::test::temp_dir("embed3");
  const auto model = esm2_test::bundled_model().string();
  std::ofstream(dir / "dup.fasta") << ">a\nMKT\n>a\nMKV\n";
  auto r = run_command(sapling::test::sapling_exe() + " embed --model " + model + " --fasta " + (dir / "dup.fasta").string() +
                       " --out " + (dir / "o.safetensors").string());
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("dup.fasta:3: duplicate label 'a'"));
  r = run_command(sapling::test::sapling_exe() + " embed --model /nonexistent --fasta " + (dir / "dup.fasta").string() +
                  " --out " + (dir / "o.safetensors").string());
  CHECK(r.exit_code == 1);
  r = run_command(sapling::test::sapling_exe() + " embed --model " + model + " --fasta " + (dir / "dup.fasta").string() +
                  " --out /proc/forbidden/o.safetensors");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("/proc/forbidden"));
  r = run_command(sapling::test::sapling_exe() + " embed --model " + model + " --fasta x --out y --dtype fp8");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("--dtype 'fp8'"));
}
