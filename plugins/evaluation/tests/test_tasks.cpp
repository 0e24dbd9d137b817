// End-to-end runs of every evaluation task on the 8M ESM2 model with small data caps, and the `sapling eval` CLI.
#include <catch2/catch.hpp>

#include <chrono>
#include <iostream>

#include "sapling/evaluation.hpp"
#include "sapling/files.hpp"
#include "sapling/model_loading.hpp"
#include "test_support.hpp"

using namespace sapling;

namespace {

std::filesystem::path model_dir() {
  auto dir = test::shared_dir() / "models/esm2_t6_8M_uniprot";
  if (!std::filesystem::exists(dir)) dir = test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16";
  return dir;
}

std::shared_ptr<SequenceEncoder> model() {
  test::load_build_plugins();
  static auto m = load_sequence_encoder(model_dir());
  return m;
}

// The first held-out UniProt sequences (whole records within `bytes`), without parsing the 160k-sequence file.
std::string first_heldout(size_t bytes) {
  const auto head = test::run_command("gzip -dc " + (test::shared_dir() / "data/sequences/uniprot_go160k.fasta.gz").string() + " 2>/dev/null" +
                                      " | head -c " + std::to_string(bytes));
  return head.output.substr(0, head.output.rfind('>'));
}

EvalResult run_task(const std::string& name, const std::vector<std::pair<std::string, OptionValue>>& settings) {
  test::load_build_plugins();
  const auto& entry = EvaluationTaskRegistry::instance().find(name);
  auto options = Options::defaults(entry.schema, name);
  for (const auto& [key, value] : settings) options.set(key, value);
  auto task = entry.factory(options);
  const auto start = std::chrono::steady_clock::now();
  auto result = task->run(*model());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << name << " (" << seconds << " s):\n" << result.format();
  return result;
}

}  // namespace

TEST_CASE("contact_unsupervised on the 8M model beats a random ranking", "[evaluation][tasks]") {
  const auto r = run_task("contact_unsupervised", {{"train_chains", int64_t{10}}, {"max_test_chains", int64_t{15}}});
  CHECK(r.get("train_chains") == 10);
  CHECK(r.get("test_chains") == 15);
  const double p = r.get("long_P@L/5"), random = r.get("long_random");
  // A weak model, but its attention carries contact signal: clearly above chance.
  CHECK(p > 2 * random);
  CHECK(p < 0.9);
  CHECK(r.get("short_P@L/5") > r.get("long_random"));
  REQUIRE(r.extra.contains("example"));
  const auto& example = r.extra["example"];
  CHECK(example["predicted"].size() == example["sequence"].get<std::string>().size());
  CHECK(r.extra["per_protein"].size() == 15);
  // Train and test never share a protein.
  for (const auto& t : r.extra["test"])
    for (const auto& s : r.extra["train"]) CHECK(t != s);
}

TEST_CASE("contact_unsupervised is deterministic for a seed", "[evaluation][tasks]") {
  const std::vector<std::pair<std::string, OptionValue>> settings{
      {"train_chains", int64_t{4}}, {"max_test_chains", int64_t{4}}, {"example_map", false}, {"seed", int64_t{5}}};
  const auto a = run_task("contact_unsupervised", settings), b = run_task("contact_unsupervised", settings);
  CHECK(a.get("long_P@L") == b.get("long_P@L"));
  CHECK(a.extra["train"] == b.extra["train"]);
}

TEST_CASE("contact_probe trains and ranks long-range contacts above chance", "[evaluation][tasks]") {
  const auto r = run_task("contact_probe", {{"train_chains", int64_t{10}}, {"max_test_chains", int64_t{10}},
                                            {"steps", int64_t{300}}, {"example_map", false}});
  CHECK(r.get("long_P@L/5") > 1.5 * r.get("long_random"));
  CHECK(r.get("long_P@L/5") <= 1.0);
}

TEST_CASE("secondary_structure probe: Q3 and Q8 in sane ranges", "[evaluation][tasks]") {
  const auto r = run_task("secondary_structure", {{"max_train_chains", int64_t{40}},
                                                  {"max_test_chains", int64_t{15}},
                                                  {"epochs", int64_t{8}}});
  // Majority class (coil) is about 0.43 of TS115 residues for Q3.
  CHECK(r.get("Q3") > 0.5);
  CHECK(r.get("Q3") < 0.95);
  CHECK(r.get("Q8") > 0.35);
  CHECK(r.get("Q8") < r.get("Q3"));
  CHECK(r.get("valid_chains") == 4);  // ceil(0.1 * 40)
  CHECK(r.get("train_chains") == 36);
}

TEST_CASE("mlm_perplexity on held-out UniProt sequences", "[evaluation][tasks]") {
  const auto dir = test::temp_dir("mlm-fasta");
  // The first held-out sequences, copied so the test does not parse the 160k-sequence file.
  write_file_atomic(dir / "heldout.fasta", first_heldout(6000));
  const auto r = run_task("mlm_perplexity", {{"fasta", (dir / "heldout.fasta").string()}});
  // The model card: held-out perplexity 12.74 (35.1 at initialisation; 20 = uniform over residues).
  CHECK(r.get("perplexity") > 6);
  CHECK(r.get("perplexity") < 18);
  CHECK(r.get("accuracy") > 0.1);
  CHECK(r.get("masked_tokens") > 300);
  // Masks depend only on (seed, sequence): batching does not change the number.
  const auto again = run_task("mlm_perplexity", {{"fasta", (dir / "heldout.fasta").string()}, {"tokens_per_batch", int64_t{700}}});
  CHECK(again.get("perplexity") == Approx(r.get("perplexity")).epsilon(1e-4));
  CHECK(again.get("masked_tokens") == r.get("masked_tokens"));
  // 80/10/10: a tenth of the scored residues are shown unchanged, which makes the task easier.
  const auto bert = run_task("mlm_perplexity", {{"fasta", (dir / "heldout.fasta").string()},
                                                {"replace_with_mask", 0.8}, {"replace_with_random", 0.1}});
  CHECK(bert.get("perplexity") < r.get("perplexity"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("sapling eval: help, errors, metrics JSON", "[evaluation][cli]") {
  const auto help = test::run_command(test::sapling_exe() + " eval contact_unsupervised --help");
  INFO(help.output);
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("PSICOV") != std::string::npos);
  CHECK(help.output.find("train_chains") != std::string::npos);
  const auto list = test::run_command(test::sapling_exe() + " eval --help");
  CHECK(list.output.find("secondary_structure") != std::string::npos);
  const auto bad = test::run_command(test::sapling_exe() + " eval mlm_perplexity --model " + model_dir().string() +
                                     " --option max_sequencs=3");
  CHECK(bad.exit_code != 0);
  CHECK(bad.output.find("max_sequences") != std::string::npos);  // did you mean
  const auto unknown = test::run_command(test::sapling_exe() + " eval contacts --model " + model_dir().string());
  CHECK(unknown.exit_code != 0);
  CHECK(unknown.output.find("evaluation_task") != std::string::npos);

  // Default data (the held-out start of data/sequences/uniprot_go160k.fasta.gz), first 8 sequences only.
  const auto dir = test::temp_dir("eval-cli");
  const auto run = test::run_command(test::sapling_exe() + " eval mlm_perplexity --threads 1 --model " +
                                     model_dir().string() + " --option max_sequences=8 --out " + (dir / "m.json").string());
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(run.output.find("perplexity") != std::string::npos);
  const auto json = nlohmann::json::parse(read_file(dir / "m.json"));
  CHECK(json["task"] == "mlm_perplexity");
  CHECK(json["metrics"]["perplexity"].get<double>() > 1);
  CHECK(json["options"].contains("fasta"));
  CHECK(json["metrics"]["sequences"].get<double>() == 8);
  std::filesystem::remove_all(dir);
}

TEST_CASE("plugins list shows the evaluation tasks", "[evaluation][cli]") {
  const auto out = test::run_command(test::sapling_exe() + " plugins list");
  CHECK(out.output.find("evaluation_task contact_unsupervised") != std::string::npos);
}
