// `sapling bench`: mean ± std and Δ tables, CSV, BENCH.toml errors, plots, and the cached CLI run with a failing model.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sapling/internal/bench.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using sapling::bench::CellResult;
using Catch::Matchers::Contains;

namespace {

using sapling::test::quote;

sapling::bench::Config table_config() {
  sapling::bench::Config c;
  c.file = "/tmp/x.toml";
  c.baseline = "base";
  for (const char* name : {"base", "better", "partly", "broken"}) c.models.push_back({name, "/m", "", {}, ""});
  sapling::bench::Task t;
  t.label = t.task = "ppl";
  c.tasks.push_back(t);
  c.seeds = {0, 1, 2};
  return c;
}

std::vector<CellResult> table_cells() {
  std::vector<CellResult> cells;
  const double base[] = {0.1, 0.1, 0.1}, better[] = {0.1, 0.2, 0.3};
  for (int64_t s = 0; s < 3; ++s) {
    cells.push_back({"base", "ppl", s, true, "", {{"acc", base[s]}, {"loss", 2.0}}});
    cells.push_back({"better", "ppl", s, true, "", {{"acc", better[s]}, {"loss", 1.0}}});
    if (s == 0) cells.push_back({"partly", "ppl", s, true, "", {{"acc", 0.05}, {"loss", 3.0}}});
    else cells.push_back({"partly", "ppl", s, false, "exit 1", {}});
    cells.push_back({"broken", "ppl", s, false, "exit 1: error: no model", {}});
  }
  return cells;
}

// A catalog with one fake task, so config parsing is tested without plugins.
sapling::bench::TaskCatalog fake_catalog() {
  static const sapling::OptionSchema schema = [] {
    sapling::OptionSchema s;
    s.add("max_sequences", sapling::OptionType::Int).default_value(int64_t{2000}).min(0);
    s.add("fasta", sapling::OptionType::Path).default_value(std::string());
    s.add("seed", sapling::OptionType::Int).default_value(int64_t{0});
    return s;
  }();
  sapling::bench::TaskCatalog catalog;
  catalog.names = {"mlm_perplexity"};
  catalog.schema = [](const std::string& name) { return name == "mlm_perplexity" ? &schema : nullptr; };
  return catalog;
}

fs::path write_bench(const fs::path& dir, const std::string& text) {
  const auto file = dir / "bench.toml";
  sapling::write_file_atomic(file, text);
  return file;
}

const std::string kGoodModels =
    "[[models]]\nname = \"a\"\npath = \"models/a\"\n"  // lines 1-3
    "[[models]]\nname = \"b\"\nrecipe = \"r.toml\"\nset = [\"train.max_steps=2\"]\n";  // lines 4-7

bool is_png(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in.gcount() == 8 && std::string(magic, 8) == std::string("\x89PNG\r\n\x1a\n", 8);
}

int count(const std::string& text, const std::string& word) {
  int n = 0;
  for (size_t pos = text.find(word); pos != std::string::npos; pos = text.find(word, pos + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("bench: mean ± sample std and Δ vs baseline, hand-checked", "[bench]") {
  const auto s = sapling::bench::summarize({0.1, 0.2, 0.3});
  CHECK(s.n == 3);
  CHECK(s.mean == Approx(0.2).margin(1e-15));
  CHECK(s.std == Approx(0.1).margin(1e-15));  // sqrt(((-0.1)^2 + 0 + 0.1^2) / 2)
  CHECK(sapling::bench::format_summary(s) == "0.200 ± 0.100 (n=3)");
  CHECK(sapling::bench::format_summary(sapling::bench::summarize({0.5})) == "0.500 (n=1)");
  CHECK(sapling::bench::format_delta(0.2, 0.1) == "+100.0%");
  CHECK(sapling::bench::format_delta(0.05, 0.1) == "-50.0%");
  CHECK(sapling::bench::format_delta(1.0, 0.0) == "n/a");

  const auto table = sapling::bench::markdown_table(table_config(), table_cells());
  INFO(table);
  CHECK_THAT(table, Contains("| model | ppl acc | Δ vs base | ppl loss | Δ vs base |"));
  CHECK_THAT(table, Contains("| base (baseline) | 0.100 ± 0.000 (n=3) | – | 2.000 ± 0.000 (n=3) | – |"));
  CHECK_THAT(table, Contains("| better | 0.200 ± 0.100 (n=3) | +100.0% | 1.000 ± 0.000 (n=3) | -50.0% |"));
  CHECK_THAT(table, Contains("| partly | 0.050 (n=1, 2 failed) | -50.0% | 3.000 (n=1, 2 failed) | +50.0% |"));
  CHECK_THAT(table, Contains("| broken | failed (3 seeds) | – | failed (3 seeds) | – |"));

  // Only chosen metrics when the task names them.
  auto config = table_config();
  config.tasks[0].metrics = {"loss"};
  CHECK_THAT(sapling::bench::markdown_table(config, table_cells()), !Contains("acc"));
}

TEST_CASE("bench: long CSV", "[bench]") {
  const std::vector<CellResult> cells{{"m,1", "t", 0, true, "", {{"acc", 0.25}, {"P@L/5", 1.0 / 3.0}}},
                                      {"m,1", "t", 1, false, "boom", {}},
                                      {"b", "t", 1, true, "", {{"acc", 1e-20}}}};
  CHECK(sapling::bench::csv_table(cells) ==
        "model,task,metric,seed,value\n"
        "\"m,1\",t,acc,0,0.25\n"
        "\"m,1\",t,P@L/5,0,0.33333333333333331\n"
        "b,t,acc,1,9.9999999999999995e-21\n");
}

TEST_CASE("bench: BENCH.toml is validated strictly, errors name file:line", "[bench]") {
  const auto dir = sapling::test::temp_dir("bench-schema");
  sapling::write_file_atomic(dir / "r.toml", "[train]\nmax_steps = 3\n");
  const auto catalog = fake_catalog();
  auto error_of = [&](const std::string& text) -> std::string {
    try {
      sapling::bench::load_config(write_bench(dir, text), catalog);
    } catch (const sapling::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string head = "seeds = [0]\nbaseline = \"a\"\n";  // lines 1-2; top-level keys precede the tables
  const std::string tail = "[[tasks]]\ntask = \"mlm_perplexity\"\n";  // after head + kGoodModels: lines 10-11
  const std::string file = (dir / "bench.toml").string();

  // Good: relative paths resolve against the bench file, options keep TOML syntax, output defaults.
  const auto good = sapling::bench::load_config(
      write_bench(dir, "seeds = [0, 3]\nbaseline = \"a\"\n" + kGoodModels + tail +
                           "options = { max_sequences = 5, fasta = \"s.fa\" }\n"),
      catalog);
  REQUIRE(good.models.size() == 2);
  CHECK(good.models[0].path == dir / "models/a");
  CHECK(good.models[1].recipe == dir / "r.toml");
  CHECK((good.models[1].set == std::vector<std::string>{"train.max_steps=2"}));
  CHECK((good.seeds == std::vector<int64_t>{0, 3}));
  REQUIRE(good.tasks.size() == 1);
  CHECK(good.tasks[0].has_seed);
  CHECK((good.tasks[0].options == std::vector<std::pair<std::string, std::string>>{
                                      {"fasta", (dir / "s.fa").string()}, {"max_sequences", "5"}}));  // strings unquoted: eval takes them literally
  CHECK(good.output == dir / "bench_out/bench");

  CHECK_THAT(error_of("seed = [0]\nbaseline = \"a\"\n" + kGoodModels + tail),
             Contains(file + ":1: unknown key 'seed' (did you mean 'seeds'?)"));
  CHECK_THAT(error_of(head + "[[models]]\nname = \"a\"\npath = \"x\"\nrecipe = \"r.toml\"\n" + tail),
             Contains(file + ":3: model 'a': give exactly one of `path`"));
  CHECK_THAT(error_of(head + kGoodModels + "[[tasks]]\ntask = \"mlm_perplexty\"\n"),
             Contains(file + ":11: tasks[0]: unknown evaluation task 'mlm_perplexty' (did you mean 'mlm_perplexity'?)"));
  const auto bad_type = error_of(head + kGoodModels + tail + "options = { max_sequences = \"many\" }\n");
  CHECK_THAT(bad_type, Contains(file + ":12: [tasks.mlm_perplexity.options] key 'max_sequences'"));
  CHECK_THAT(error_of(head + kGoodModels + tail + "options = { max_sequence = 3 }\n"),
             Contains(file + ":12: [tasks.mlm_perplexity.options] key 'max_sequence'"));
  CHECK_THAT(error_of("seeds = [0]\nbaseline = \"c\"\n" + kGoodModels + tail),
             Contains(file + ":2: baseline 'c' is not a model name"));
  CHECK_THAT(error_of(head + kGoodModels + "[[models]]\nname = \"a\"\npath = \"y\"\n" + tail),
             Contains(file + ":10: duplicate model name 'a'"));
  CHECK_THAT(error_of("seeds = [0, \"1\"]\nbaseline = \"a\"\n" + kGoodModels + tail),
             Contains(file + ":1: 'seeds': expected non-negative integers, got a string"));
  CHECK_THAT(error_of(head + "[[models]]\nname = \"a b\"\npath = \"x\"\n" + tail),
             Contains(file + ":4: models[0].name 'a b': use only letters"));
  CHECK_THAT(error_of("baseline = \"a\"\n" + kGoodModels + tail), Contains(file + ":1: missing required key 'seeds'"));
  CHECK_THAT(error_of("seeds = [0\n" + kGoodModels + tail), Contains("TOML syntax error"));
  CHECK_THAT(error_of(head + kGoodModels + tail + "[[models]]\n"), Contains(":12: models[2]: missing required key 'name'"));
  // A top-level key written after a table belongs to that table: say so.
  const auto misplaced = error_of(kGoodModels + tail + "seeds = [0]\n");
  CHECK_THAT(misplaced, Contains(file + ":10: tasks[0]: unknown key 'seeds'"));
  CHECK_THAT(misplaced, Contains("before the first [[models]] or [[tasks]]"));
  fs::remove_all(dir);
}

TEST_CASE("bench: plots from cells and training logs, data and scripts only without gnuplot", "[bench]") {
  const auto dir = sapling::test::temp_dir("bench-plots");
  auto config = table_config();
  config.output = dir / "out";
  sapling::bench::ReportInputs in;
  in.cells = table_cells();
  const auto run = dir / "run";
  fs::create_directories(run);
  sapling::write_file_atomic(run / "metrics.jsonl",
                             "{\"type\":\"train\",\"step\":1,\"loss\":3.0}\n{\"type\":\"train\",\"step\":2,\"loss\":2.5}\n"
                             "{\"type\":\"valid\",\"step\":2,\"loss\":2.7}\n{\"type\":\"train\",\"step\":3,\"loss\":2.0}\n");
  in.runs["better"] = {{0, run}};
  // A contact cell with an example map (3 x 9 residues: one long pair is predicted).
  nlohmann::json pred = nlohmann::json::array(), truth = nlohmann::json::array();
  for (int i = 0; i < 9; ++i) {
    nlohmann::json p = nlohmann::json::array(), t = nlohmann::json::array();
    for (int j = 0; j < 9; ++j) {
      p.push_back(std::abs(i - j) >= 6 ? 0.1 * (i + j) : 0.0);
      t.push_back((i == 0 && j == 8) || (i == 8 && j == 0) ? 1.0 : 0.0);
    }
    pred.push_back(p);
    truth.push_back(t);
  }
  nlohmann::json cell{{"task", "contact_unsupervised"},
                      {"metrics", {{"acc", 0.1}}},
                      {"extra", {{"example", {{"name", "1abc_A"}, {"predicted", pred}, {"true", truth}}}}}};
  sapling::write_file_atomic(dir / "cell.json", cell.dump());
  in.cell_files["base/ppl/0"] = dir / "cell.json";

  const char* old_path = std::getenv("PATH");
  const std::string saved = old_path ? old_path : "";
  ::setenv("PATH", (dir / "nowhere").c_str(), 1);
  sapling::bench::write_reports(config, in);
  ::setenv("PATH", saved.c_str(), 1);
  const auto plots = config.output / "plots";
  CHECK(fs::exists(config.output / "results.md"));
  CHECK(fs::exists(plots / "bar_ppl.gp"));
  CHECK(!fs::exists(plots / "bar_ppl.png"));
  const auto bars = sapling::read_file(plots / "bar_ppl.dat");
  CHECK_THAT(bars, Contains("# model mean std n (ppl: acc)\n\"base\" 0.1 "));  // std: rounding noise of 3 x 0.1
  CHECK_THAT(bars, Contains("\n\"better\" 0.2 0.1 3\n\"partly\" 0.05 0 1\n"));
  CHECK_THAT(bars, !Contains("broken"));
  // Raw values and their debiased moving average (0.6): 3, (0.6*1.2 + 0.4*2.5) / (1 - 0.6^2) = 2.6875, ...
  CHECK_THAT(sapling::read_file(plots / "training_better_run1_train.dat"),
             Contains("# seed 0\n# step loss loss_smoothed\n1 3 3\n2 2.5 2.6875\n3 2 2.33673469\n"));
  CHECK(sapling::read_file(plots / "training_better_run1_valid.dat") == "# seed 0\n# step loss\n2 2.7\n");
  CHECK(fs::exists(plots / "contacts_base_ppl.gp"));
  // Upper triangle: the top-L (9) pairs with |i-j| >= 6, the true one black (1), others red (0.5); lower: truth.
  const auto grid = sapling::read_file(plots / "contacts_base_ppl.dat");
  CHECK(grid.substr(0, grid.find('\n')) == "0 0 0 0 0 0 0.5 0.5 1");
  CHECK(grid.substr(grid.rfind('\n', grid.size() - 2) + 1) == "1 0 0 0 0 0 0 0 0\n");

  if (sapling::bench::find_gnuplot().empty()) {
    WARN("gnuplot not installed: PNG output not checked");
  } else {
    fs::remove_all(plots);
    sapling::bench::write_reports(config, in);
    for (const char* png : {"bar_ppl.png", "training_better.png", "contacts_base_ppl.png"}) {
      INFO(png);
      CHECK(is_png(plots / png));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("sapling bench: cells run as subprocesses, a failing model is reported, the second run is cached",
          "[bench][cli]") {
  SAPLING_REQUIRE_DATA("uniprot_go160k");
  SAPLING_REQUIRE_DATA("psicov");
  SAPLING_REQUIRE_DATA("esm2_t6_8M_uniprot");
  const auto dir = sapling::test::temp_dir("bench-cli");
  const auto model = sapling::test::data_path("esm2_t6_8M_uniprot");
  const auto file = write_bench(dir, "seeds = [0, 1]\nbaseline = \"esm2_8m\"\noutput = \"out\"\n"
                                     "[[models]]\nname = \"esm2_8m\"\npath = " + quote(model) +
                                         "\n[[models]]\nname = \"missing\"\npath = \"no/such/model\"\n"
                                         "[[tasks]]\ntask = \"mlm_perplexity\"\nmetrics = [\"perplexity\", \"accuracy\"]\n"
                                         "options = { max_sequences = 2 }\n"
                                         "[[tasks]]\ntask = \"contact_unsupervised\"\nmetrics = [\"long_P@L/5\"]\n"
                                         "options = { train_chains = 2, max_test_chains = 1, max_iterations = 50 }\n");
  const std::string command = sapling::test::sapling_exe() + " bench " + quote(file) + " --threads 1";
  const auto start = std::chrono::steady_clock::now();
  const auto first = sapling::test::run_command(command);
  const double first_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(first.output);
  WARN("first bench run (4 cells, 4 failing): " << first_s << " s");
  CHECK(first.exit_code == 1);
  CHECK(count(first.output, ": done in") == 4);
  CHECK(count(first.output, ": FAILED") == 4);
  CHECK_THAT(first.output, Contains("4 cells failed"));
  const auto out = dir / "out";
  const auto md = sapling::read_file(out / "results.md");
  CHECK_THAT(md, Contains("| esm2_8m (baseline) | "));
  CHECK_THAT(md, Contains(" (n=2) | – |"));
  CHECK_THAT(md, Contains("| missing | failed (2 seeds) | – |"));
  CHECK_THAT(md, Contains("missing × mlm_perplexity seed 0: exit 1: error:"));
  const auto csv = sapling::read_file(out / "results.csv");
  CHECK_THAT(csv, Contains("esm2_8m,mlm_perplexity,perplexity,0,"));
  CHECK_THAT(csv, Contains("esm2_8m,mlm_perplexity,perplexity,1,"));
  CHECK_THAT(csv, Contains("esm2_8m,contact_unsupervised,long_P@L/5,1,"));
  CHECK_THAT(csv, !Contains("missing"));
  std::vector<fs::path> cells;
  for (const auto& e : fs::directory_iterator(out / "cells")) cells.push_back(e.path());
  CHECK(cells.size() == 4);
  const auto stamp = cells.empty() ? fs::file_time_type{} : fs::last_write_time(cells[0]);

  const auto second = sapling::test::run_command(command);
  INFO(second.output);
  CHECK(second.exit_code == 1);
  CHECK(count(second.output, ": cached") == 4);
  CHECK(count(second.output, ": done in") == 0);
  if (!cells.empty()) CHECK(fs::last_write_time(cells[0]) == stamp);
  CHECK(sapling::read_file(out / "results.csv") == csv);

  if (sapling::bench::find_gnuplot().empty()) {
    WARN("gnuplot not installed: PNG output not checked");
  } else {
    CHECK(is_png(out / "plots/bar_mlm_perplexity.png"));
    CHECK(is_png(out / "plots/bar_contact_unsupervised.png"));
    CHECK(is_png(out / "plots/contacts_esm2_8m_contact_unsupervised.png"));
  }
  fs::remove_all(dir);
}

TEST_CASE("sapling bench --force re-runs a cell and keeps the old result", "[bench][cli]") {
  SAPLING_REQUIRE_DATA("esm2_t6_8M_uniprot");
  const auto dir = sapling::test::temp_dir("bench-force");
  const auto file = write_bench(dir, "seeds = [0]\nbaseline = \"m\"\noutput = \"out\"\n[[models]]\nname = \"m\"\npath = " +
                                         quote(sapling::test::data_path("esm2_t6_8M_uniprot")) +
                                         "\n[[tasks]]\ntask = \"mlm_perplexity\"\noptions = { max_sequences = 1, fasta = \"held_out.fasta\" }\n");
  // A path option (relative to the bench file) must reach `sapling eval` as the plain path.
  std::ofstream(dir / "held_out.fasta") << ">a\nMKTAYIAKQRQISFVKSHFSRQ\n";
  const std::string command = sapling::test::sapling_exe() + " bench " + quote(file) + " --threads 1";
  const auto first = sapling::test::run_command(command);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const auto forced = sapling::test::run_command(command + " --force");
  INFO(forced.output);
  CHECK(forced.exit_code == 0);
  CHECK_THAT(forced.output, Contains("--force, moved the old result to"));
  CHECK(count(forced.output, ": done in") == 1);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir / "out/cells")) files += e.path().extension() == ".json";
  CHECK(files == 2);  // the new result and the old one, moved aside
  fs::remove_all(dir);
}

TEST_CASE("sapling bench trains recipe models per seed, reuses the runs, and reports a recipe that cannot train",
          "[bench][cli][train]") {
  SAPLING_REQUIRE_DATA("uniprot_go160k");  // the perplexity task's default held-out sequences
  const auto dir = sapling::test::temp_dir("bench-train");
  const auto src = sapling::test::source_dir();
  const auto prepared = sapling::test::run_command(
      sapling::test::sapling_exe() + " prepare " + quote(src / "datasets/sample/bm5") + " " +
      quote(src / "datasets/sample/psicov") + " --out " + quote(dir / "dataset") +
      " --tokenizer foldseek_3di --valid-fraction 0.2 --reference-fraction 0.4 --seed 6 --quiet");  // as the quickstart
  REQUIRE(prepared.exit_code == 0);
  // The quickstart reference recipe made tiny: 2 steps of the tiny ESM2 fixture on short crops.
  const std::string set = "set = [\"model.path=" + (sapling::test::fixtures_dir() / "esm2_tiny").string() +
                          "\", \"data.dataset=" + (dir / "dataset").string() +
                          "\", \"train.max_steps=2\", \"train.valid_every=1\", \"train.valid_max_batches=1\","
                          " \"data.max_length=96\", \"data.tokens_per_batch=512\"]\n";
  const auto file = write_bench(
      dir, "seeds = [0, 1]\nbaseline = \"tiny\"\noutput = \"out\"\n"
           "[[models]]\nname = \"tiny\"\nrecipe = " + quote(src / "recipes/reference_quickstart.toml") + "\n" + set +
           "[[models]]\nname = \"no_data\"\nrecipe = " + quote(src / "recipes/reference_quickstart.toml") +
           "\nset = [\"data.dataset=" + (dir / "nowhere").string() + "\"]\n"
           "[[tasks]]\ntask = \"mlm_perplexity\"\noptions = { max_sequences = 1 }\n");
  const std::string command = sapling::test::sapling_exe() + " bench " + quote(file) + " --threads 1";
  const auto start = std::chrono::steady_clock::now();
  const auto first = sapling::test::run_command(command);
  WARN("bench with 2 tiny training runs: "
       << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s");
  INFO(first.output);
  CHECK(first.exit_code == 1);
  CHECK(count(first.output, "train tiny seed") == 4);  // running + done, per seed
  CHECK(count(first.output, ": done in") == 4);        // 2 trainings + 2 cells
  CHECK(count(first.output, "train no_data seed 0: FAILED: training failed") == 1);
  CHECK(count(first.output, "FAILED (model not trained)") == 2);
  const auto out = dir / "out";
  for (const char* seed : {"0", "1"}) {
    CHECK(fs::exists(out / ("runs/tiny-seed" + std::string(seed)) / "final/config.json"));
    CHECK(fs::exists(out / ("runs/tiny-seed" + std::string(seed)) / "bench_identity.txt"));
  }
  CHECK_THAT(sapling::read_file(out / "results.md"), Contains("| no_data | failed (2 seeds) |"));
  CHECK_THAT(sapling::read_file(out / "results.csv"), Contains("tiny,mlm_perplexity,perplexity,1,"));
  CHECK(fs::exists(out / "plots/training_tiny_run1_train.dat"));
  CHECK(fs::exists(out / "plots/training_tiny_run1_valid.dat"));
  if (!sapling::bench::find_gnuplot().empty()) CHECK(is_png(out / "plots/training_tiny.png"));

  const auto second = sapling::test::run_command(command);
  INFO(second.output);
  CHECK(count(second.output, "train tiny seed 0: cached") == 1);
  CHECK(count(second.output, "train tiny seed 1: cached") == 1);
  CHECK(count(second.output, "tiny × mlm_perplexity seed 1: cached") == 1);
  CHECK(count(second.output, ": done in") == 0);

  // A changed recipe does not silently replace the finished run.
  sapling::write_file_atomic(file, sapling::read_file(file) + "\n");  // same content: still cached
  auto text = sapling::read_file(file);
  text.replace(text.find("train.max_steps=2"), 17, "train.max_steps=3");
  sapling::write_file_atomic(file, text);
  const auto changed = sapling::test::run_command(command);
  INFO(changed.output);
  CHECK_THAT(changed.output, Contains("holds another run (the recipe, its base or `set` changed); pass --force"));
  fs::remove_all(dir);
}

TEST_CASE("sapling plot: every term of several runs in its own panel, kept fractions together, and clear errors",
          "[bench][plot]") {
  const auto dir = sapling::test::temp_dir("plot-runs");
  for (const char* run : {"a", "b"}) {
    fs::create_directories(dir / run);
    std::string lines;
    for (int step = 1; step <= 4; ++step)
      lines += "{\"type\":\"train\",\"step\":" + std::to_string(step) + ",\"loss\":" + std::to_string(5 - step) +
               ",\"mlm\":2.0,\"kept.mlm\":0.8,\"kept.contrastive\":0.7,\"lr\":0.001,\"residues\":400}\n";
    lines += "{\"type\":\"valid\",\"step\":4,\"loss\":1.5,\"mlm\":1.9}\n{\"type\":\"tra";  // cut by a kill
    sapling::write_file_atomic(dir / run / "metrics.jsonl", lines);
  }
  const auto r = sapling::test::run_command(sapling::test::sapling_exe() + " plot " + (dir / "a").string() + " " +
                                            (dir / "b" / "metrics.jsonl").string() + " --out " + (dir / "out").string());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  const auto gp = sapling::read_file(dir / "out" / "training.gp");
  for (const char* panel : {"'total loss'", "'mlm'", "'kept fraction (selection)'", "'lr'"}) CHECK_THAT(gp, Contains(panel));
  CHECK_THAT(gp, !Contains("'residues'"));  // bookkeeping is not drawn
  CHECK_THAT(gp, Contains("multiplot layout 2,2"));
  CHECK_THAT(gp, Contains("title 'a, kept.contrastive'") && Contains("title 'b, kept.mlm'"));
  CHECK_THAT(sapling::read_file(dir / "out" / "training_run2_valid.dat"), Contains("4 1.5 1.9"));
  if (!sapling::bench::find_gnuplot().empty()) CHECK(is_png(dir / "out" / "training.png"));

  sapling::write_file_atomic(dir / "empty.jsonl", "{\"type\":\"valid\",\"step\":0,\"loss\":1}\n");
  const auto empty = sapling::test::run_command(sapling::test::sapling_exe() + " plot " + (dir / "empty.jsonl").string() +
                                                " --out " + (dir / "out").string());
  CHECK(empty.exit_code != 0);
  CHECK_THAT(empty.output, Contains("empty.jsonl: no training lines"));
  const auto missing = sapling::test::run_command(sapling::test::sapling_exe() + " plot " + (dir / "nope").string());
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.output, Contains("nope: no metrics.jsonl"));
  fs::remove_all(dir);
}
