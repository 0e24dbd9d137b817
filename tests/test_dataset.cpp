// Tests of the structure dataset (write / memory-mapped read), split assignment and `sapling prepare`.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>

#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using sapling::ChainStructure;
using sapling::test::check_same_chain;

namespace {


using sapling::test::quote;

}  // namespace

TEST_CASE("split groups: BM5 complex id, PSICOV id, entry", "[dataset]") {
  using sapling::SplitBy;
  CHECK(sapling::split_group("1AHW_r_u", SplitBy::Complex) == "1AHW");
  CHECK(sapling::split_group("1AHW_l_b-matched", SplitBy::Complex) == "1AHW");
  CHECK(sapling::split_group("1IRAtrunc_r_u", SplitBy::Complex) == "1IRA");
  CHECK(sapling::split_group("1a3a.chain", SplitBy::Complex) == "1A3A");
  CHECK(sapling::split_group("1a3a", SplitBy::Complex) == "1A3A");
  CHECK(sapling::split_group("my_model", SplitBy::Complex) == "my");
  CHECK(sapling::split_group("1AHW_r_u", SplitBy::Entry) == "1AHW_r_u");
  // Deterministic, seed-dependent, and close to the requested fraction.
  int valid = 0, changed = 0;
  for (int g = 0; g < 10000; ++g) {
    const std::string group = "G" + std::to_string(g);
    const auto split = sapling::assign_split(group, 0.1, 0);
    CHECK(split == sapling::assign_split(group, 0.1, 0));
    valid += split == "valid";
    changed += split != sapling::assign_split(group, 0.1, 1);
  }
  INFO("valid " << valid << " / 10000, changed by seed " << changed);
  CHECK(valid > 900);
  CHECK(valid < 1100);
  CHECK(changed > 1000);
  CHECK(sapling::assign_split("1AHW", 0.0, 0) == "train");
  CHECK(sapling::assign_split("1AHW", 1.0, 0) == "valid");
}

TEST_CASE("dataset round trip: several shards, tokens, embeddings", "[dataset]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::temp_dir("dataset");
  std::vector<ChainStructure> chains;
  for (const char* id : {"1aap", "1ne2", "1pko"}) {
    auto read = sapling::read_structure(sapling::test::data_path("psicov") / (std::string(id) + ".pdb.gz"));
    chains.insert(chains.end(), read.begin(), read.end());
  }
  REQUIRE(chains.size() >= 4);
  torch::manual_seed(0);
  std::vector<torch::Tensor> tokens, embeddings;
  {
    sapling::DatasetWriterOptions options;
    options.shard_size = 2;
    options.tokenizer = "test";
    options.token_symbols = {"a", "b", "c"};
    sapling::StructureDatasetWriter writer(dir, options);
    for (size_t i = 0; i < chains.size(); ++i) {
      tokens.push_back(torch::arange(chains[i].length()).remainder(3));
      embeddings.push_back(torch::randn({chains[i].length(), 8}));
      sapling::ChainMetadata m;
      m.split = i % 2 ? "valid" : "train";
      writer.add(chains[i], m, tokens.back(), embeddings.back());
    }
    // Token and embedding presence must be uniform.
    CHECK_THROWS_WITH(writer.add(chains[0], {}), Catch::Contains("structure tokens"));
    writer.finish("{\"note\": 1}");
  }
  CHECK(fs::exists(dir / "index.json"));
  CHECK(fs::exists(dir / "shard-00001.safetensors"));
  const sapling::StructureDataset ds(dir);
  REQUIRE(ds.size() == chains.size());
  CHECK(ds.has_tokens());
  CHECK(ds.tokenizer() == "test");
  CHECK(ds.token_symbols().size() == 3);
  CHECK(ds.embedding_dim() == 8);
  for (size_t i = 0; i < chains.size(); ++i) {
    check_same_chain(ds.chain(i), chains[i]);
    CHECK(ds.metadata(i).split == (i % 2 ? "valid" : "train"));
    CHECK(ds.metadata(i).length == chains[i].length());
    CHECK(torch::equal(ds.tokens(i).to(torch::kInt64), tokens[i]));
    const double diff = (ds.embeddings(i).to(torch::kFloat32) - embeddings[i]).abs().max().item<double>();
    INFO("float16 embedding round trip max diff " << diff);
    CHECK(diff < 4e-3);  // float16 rounding of N(0,1) values
  }
  CHECK(ds.indices("valid").size() == chains.size() / 2);
  CHECK_THROWS_WITH(ds.chain(chains.size()), Catch::Contains("out of range"));

  // A damaged index is reported with its path.
  sapling::write_file_atomic(dir / "index.json", "{\"format\": \"sapling-structure-dataset\", \"version\": 1,");
  CHECK_THROWS_WITH(sapling::StructureDataset(dir), Catch::Contains("index.json"));
  fs::remove(dir / "index.json");
  CHECK_THROWS_WITH(sapling::StructureDataset(dir), Catch::Contains("no index.json"));
  fs::remove_all(dir);
}

TEST_CASE("sapling prepare: read back equals read_structure, bad file skipped or fatal with --strict", "[dataset][cli]") {
  SAPLING_REQUIRE_DATA("bm5");
  SAPLING_REQUIRE_DATA("psicov");
  const auto work = sapling::test::temp_dir("prepare");
  const auto inputs = work / "in";
  fs::create_directories(inputs / "sub");
  const std::vector<std::string> names = {"1AHW_r_u", "1AHW_l_u", "1AHW_r_b-matched", "1ACB_l_b-matched", "2BTF_l_b-matched"};
  for (const auto& n : names) fs::copy_file(sapling::test::data_path("bm5") / (n + ".pdb.gz"), inputs / "sub" / (n + ".pdb.gz"));
  fs::copy_file(sapling::test::data_path("psicov") / "1aap.pdb.gz", inputs / "1aap.pdb.gz");
  fs::copy_file(sapling::test::data_path("psicov") / "1aap.fasta", inputs / "1aap.fasta");  // not a structure: ignored
  {
    std::ofstream bad(inputs / "broken.pdb");
    bad << "HETATM    1  O   HOH A 301      11.000  10.000  10.000  1.00 10.00           O\n";
  }
  const auto out = work / "ds";
  const std::string cmd = sapling::test::sapling_exe() + " prepare " + quote(inputs) + " --out " + quote(out) +
                          " --shard-size 3 --threads 2";
  const auto result = sapling::test::run_command(cmd);
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK(result.output.find("broken.pdb") != std::string::npos);
  CHECK(result.output.find("no protein chain") != std::string::npos);
  CHECK(result.output.find("6 read, 1 skipped") != std::string::npos);

  const sapling::StructureDataset ds(out);
  std::vector<ChainStructure> expected;
  for (const auto& file : sapling::find_structure_files({inputs})) {
    if (file.filename() == "broken.pdb") continue;
    // prepare's default keeps the residues with coordinates (--sequence observed).
    for (const auto& chain : sapling::read_structure(file)) expected.push_back(sapling::observed_residues(chain));
  }
  REQUIRE(ds.size() == expected.size());
  for (size_t i = 0; i < ds.size(); ++i) {
    check_same_chain(ds.chain(i), expected[i]);
    CHECK(ds.metadata(i).group == sapling::split_group(expected[i].entry, sapling::SplitBy::Complex));
  }

  // Filters: --high-quality keeps only the X-ray <= 2.0 A PSICOV chains (1aap, 1.5 A).
  const auto hq = work / "hq";
  const auto hq_result = sapling::test::run_command(sapling::test::sapling_exe() + " prepare " + quote(inputs) +
                                                    " --out " + quote(hq) + " --high-quality --min-length 30");
  INFO(hq_result.output);
  REQUIRE(hq_result.exit_code == 0);
  const sapling::StructureDataset hq_ds(hq);
  REQUIRE(hq_ds.size() == 2);
  for (size_t i = 0; i < hq_ds.size(); ++i) {
    CHECK(hq_ds.metadata(i).entry == "1aap");
    CHECK(hq_ds.metadata(i).high_quality);
  }
  CHECK(hq_result.output.find("not high quality") != std::string::npos);

  // --strict: the bad file is fatal, exit status 1, message names it; no index is written.
  const auto strict_out = work / "strict";
  const auto strict = sapling::test::run_command(sapling::test::sapling_exe() + " prepare " + quote(inputs) +
                                                 " --out " + quote(strict_out) + " --strict");
  INFO(strict.output);
  CHECK(strict.exit_code == 1);
  CHECK(strict.output.find("broken.pdb: no protein chain") != std::string::npos);
  CHECK_FALSE(fs::exists(strict_out / "index.json"));

  // --chains B keeps 1aap chain B only (BM5 files here have chains A or B).
  const auto only_b = work / "only_b";
  const auto b_result = sapling::test::run_command(sapling::test::sapling_exe() + " prepare " +
                                                   quote(inputs / "1aap.pdb.gz") + " --out " + quote(only_b) +
                                                   " --chains B");
  INFO(b_result.output);
  REQUIRE(b_result.exit_code == 0);
  const sapling::StructureDataset b_ds(only_b);
  REQUIRE(b_ds.size() == 1);
  CHECK(b_ds.metadata(0).chain == "B");
  CHECK(b_result.output.find("chain not requested: 1") != std::string::npos);

  // Usage errors.
  const auto no_tokenizer = sapling::test::run_command(sapling::test::sapling_exe() + " prepare " +
                                                       quote(inputs) + " --out " + quote(work / "t") +
                                                       " --tokenizer no_such_tokenizer");
  CHECK(no_tokenizer.exit_code == 1);
  CHECK(no_tokenizer.output.find("no_such_tokenizer") != std::string::npos);
  const auto missing = sapling::test::run_command(sapling::test::sapling_exe() + " prepare " +
                                                  quote(work / "nothing-here") + " --out " + quote(work / "x"));
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find("nothing-here: no such file or folder") != std::string::npos);
  fs::remove_all(work);
}

TEST_CASE("sapling prepare on all of BM5: complexes never straddle the split", "[dataset][cli][bm5]") {
  SAPLING_REQUIRE_DATA("bm5");
  const auto out = sapling::test::temp_dir("prepare-bm5");
  const auto result = sapling::test::run_command(sapling::test::sapling_exe() + " prepare " +
                                                 quote(sapling::test::data_path("bm5")) + " --out " + quote(out) +
                                                 " --valid-fraction 0.1 --seed 7");
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  std::cout << result.output;
  const sapling::StructureDataset ds(out);
  std::map<std::string, std::set<std::string>> splits_of_complex;
  std::set<std::string> entries;
  for (size_t i = 0; i < ds.size(); ++i) {
    const auto& m = ds.metadata(i);
    splits_of_complex[m.entry.substr(0, 4)].insert(m.split);
    entries.insert(m.entry);
  }
  CHECK(entries.size() == 924);
  // 231 BM5 complexes; 1IRA and 1IRAtrunc are one PDB complex, so 230 groups.
  CHECK(splits_of_complex.size() == 230);
  int valid_complexes = 0;
  for (const auto& [complex, splits] : splits_of_complex) {
    INFO(complex);
    CHECK(splits.size() == 1);
    valid_complexes += splits.count("valid") ? 1 : 0;
  }
  std::cout << "BM5 complexes in valid: " << valid_complexes << " / 230\n";
  CHECK(valid_complexes > 5);
  CHECK(valid_complexes < 50);
  fs::remove_all(out);
}
