// One name per concept: the old spellings of component options and encoders still work for one release, each with
// a warning that names the new one; `--set TABLE.key=value` is how prepare, tokens and eval set a component's options.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "sapling/dataset.hpp"
#include "sapling/deprecation.hpp"
#include "sapling/files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using sapling::test::quote;
using sapling::test::run_command;

namespace {

// Two small BM5 files of the bundled sample: enough for a dataset, quick to read.
std::string two_files() {
  const auto bm5 = sapling::test::source_dir() / "datasets/sample/bm5";
  return " " + quote(bm5 / "1AY7_l_u.pdb.gz") + " " + quote(bm5 / "1AY7_r_b-matched.pdb.gz");
}

std::string model_dir() { return quote(sapling::test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16"); }

const std::string kNotice = "; sapling 0.2 still reads the old name, the next release will not";

}  // namespace

TEST_CASE("renamed flags: prepare's --tokenizer-option, --pgnn-option, --embed and --embed-option warn and still work",
          "[cli][prepare][names]") {
  const auto dir = sapling::test::temp_dir("renamed-prepare");
  const std::string base = sapling::test::sapling_exe() + " prepare" + two_files() +
                           " --tokenizer foldseek_3di --valid-fraction 0.5 --threads 1 --out ";
  const auto now = run_command(base + quote(dir / "new") + " --set tokenizer.residues=all --pgnn gearnet "
                               "--allow-random-pgnn --set pgnn.hidden_dims=[8]");
  INFO(now.output);
  REQUIRE(now.exit_code == 0);
  CHECK(now.output.find("now called") == std::string::npos);

  const auto old = run_command(base + quote(dir / "old") + " --tokenizer-option residues=all --embed gearnet "
                               "--allow-random-pgnn --embed-option hidden_dims=[8]");
  INFO(old.output);
  REQUIRE(old.exit_code == 0);
  CHECK(old.output.find("--tokenizer-option key=value is now called --set tokenizer.key=value" + kNotice) !=
        std::string::npos);
  CHECK(old.output.find("--embed-option key=value is now called --set pgnn.key=value" + kNotice) != std::string::npos);
  CHECK(old.output.find("--embed is now called --pgnn") != std::string::npos);
  // The same dataset either way: tokenizer options recorded as key=value pairs, the same embedding width.
  const sapling::StructureDataset a(dir / "new"), b(dir / "old");
  CHECK(a.size() == b.size());
  CHECK(a.embedding_dim() == 8);
  CHECK(b.embedding_dim() == 8);
  CHECK(a.tokenizer_options() == b.tokenizer_options());

  const auto pgnn_option = run_command(base + quote(dir / "old2") + " --pgnn gearnet --allow-random-pgnn "
                                       "--pgnn-option hidden_dims=[8]");
  INFO(pgnn_option.output);
  CHECK(pgnn_option.exit_code == 0);
  CHECK(pgnn_option.output.find("--pgnn-option key=value is now called --set pgnn.key=value") != std::string::npos);

  // --set names a component's table; another table, or none, fails naming the tables there are.
  const auto bad_table = run_command(base + quote(dir / "bad") + " --set model.residues=all");
  CHECK(bad_table.exit_code != 0);
  CHECK(bad_table.output.find("--set model.residues=all: expected TABLE.key=value with TABLE one of tokenizer, pgnn") !=
        std::string::npos);
  const auto typo = run_command(base + quote(dir / "bad") + " --set tokenizer.residue=all");
  CHECK(typo.exit_code != 0);
  CHECK(typo.output.find("--set tokenizer.residue=all: [tokenizer] has no option 'residue'") != std::string::npos);
  const auto no_tokenizer = run_command(sapling::test::sapling_exe() + " prepare" + two_files() + " --out " +
                                        quote(dir / "bad") + " --set tokenizer.residues=all");
  CHECK(no_tokenizer.exit_code != 0);
  CHECK(no_tokenizer.output.find("--set tokenizer.KEY=VALUE needs --tokenizer NAME") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("renamed flags: tokens' --option and --tokenizer-option warn and give the same tokens as --set",
          "[cli][tokens][names]") {
  const auto dir = sapling::test::temp_dir("renamed-tokens");
  const std::string base = sapling::test::sapling_exe() + " tokens --input" + two_files() + " --threads 1 --out ";
  const auto now = run_command(base + quote(dir / "new") + " --set tokenizer.residues=all");
  INFO(now.output);
  REQUIRE(now.exit_code == 0);
  for (const std::string flag : {"--option", "--tokenizer-option"}) {
    const auto old = run_command(base + quote(dir / "old") + " " + flag + " residues=all");
    INFO(old.output);
    REQUIRE(old.exit_code == 0);
    CHECK(old.output.find(flag + " key=value is now called --set tokenizer.key=value" + kNotice) != std::string::npos);
    CHECK(sapling::read_file(dir / "old.3di.fasta") == sapling::read_file(dir / "new.3di.fasta"));
  }
  fs::remove_all(dir);
}

TEST_CASE("renamed flags: eval's --option warns and still sets the task option, and --help finds the task after --set",
          "[cli][eval][names]") {
  const auto dir = sapling::test::temp_dir("renamed-eval");
  const auto fasta = quote(sapling::test::source_dir() / "datasets/sample/bm5_foldseek.aa.fasta");
  const std::string base = sapling::test::sapling_exe() + " eval mlm_perplexity --threads 1 --dtype fp32 --model " +
                           model_dir();
  const auto now = run_command(base + " --set task.fasta=" + fasta + " --set task.max_sequences=2 --out " +
                               quote(dir / "new.json"));
  INFO(now.output);
  REQUIRE(now.exit_code == 0);
  const auto old = run_command(base + " --option fasta=" + fasta + " --option max_sequences=2 --out " +
                               quote(dir / "old.json"));
  INFO(old.output);
  REQUIRE(old.exit_code == 0);
  CHECK(old.output.find("--option key=value is now called --set task.key=value" + kNotice) != std::string::npos);
  CHECK(now.output.find("now called") == std::string::npos);
  const auto metric = [](const fs::path& file) {
    return nlohmann::json::parse(sapling::read_file(file))["metrics"]["perplexity"].get<double>();
  };
  CHECK(metric(dir / "old.json") == metric(dir / "new.json"));

  // The task is the first word that is not an option's value, wherever --set and --encoder stand.
  const auto help = run_command(sapling::test::sapling_exe() + " eval --set task.max_sequences=2 --encoder esm2 "
                                "mlm_perplexity --help");
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("mlm_perplexity:") != std::string::npos);
  CHECK(help.output.find("task options (--set task.key=value)") != std::string::npos);
  fs::remove_all(dir);
}
