// `sapling prepare` at scale: --part K/N + --merge give the single-process dataset, a killed prepare resumes, --update adds and replaces files.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>

#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/internal/prepare.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using sapling::test::quote;

namespace {

// The bundled sample (BM5 and PSICOV files), 3Di tokens, every split in use.
const std::string kFlags = " --tokenizer foldseek_3di --valid-fraction 0.2 --reference-fraction 0.4 --seed 6 --quiet";

std::string sample_inputs() {
  const auto src = sapling::test::source_dir() / "datasets/sample";
  return " " + quote(src / "bm5") + " " + quote(src / "psicov");
}

sapling::test::CommandResult prepare(const std::string& inputs, const fs::path& out, const std::string& extra = "") {
  return sapling::test::run_command(sapling::test::sapling_exe() + " prepare" + inputs + " --out " + quote(out) + kFlags +
                                    extra);
}

// Chain i of `got` equals chain j of `want`: the chain itself (names, header facts, arrays: check_same_chain),
// the metadata only the dataset holds (the source file only when `same_source`), tokens and pGNN rows.
void check_same_dataset_chain(const sapling::StructureDataset& got, size_t i, const sapling::StructureDataset& want,
                              size_t j, bool same_source = true) {
  sapling::test::check_same_chain(got.chain(i), want.chain(j));
  const auto &m = got.metadata(i), &w = want.metadata(j);
  INFO(w.entry << " " << w.chain);
  CHECK(m.split == w.split);
  CHECK(m.group == w.group);
  CHECK(m.length == w.length);
  CHECK(m.observed == w.observed);
  CHECK(m.high_quality == w.high_quality);
  if (same_source) {
    CHECK(m.source == w.source);
    CHECK(m.input_index == w.input_index);
  }
  if (want.has_tokens()) CHECK(sapling::test::same_values(got.tokens(i), want.tokens(j)));
  if (want.has_embeddings()) CHECK(sapling::test::same_values(got.embeddings(i), want.embeddings(j)));
}

// Same chains in the same order with the same content.
void check_same_dataset(const fs::path& got_dir, const fs::path& want_dir) {
  const sapling::StructureDataset got(got_dir), want(want_dir);
  REQUIRE(got.size() == want.size());
  REQUIRE(got.has_tokens() == want.has_tokens());
  REQUIRE(got.embedding_dim() == want.embedding_dim());
  for (size_t i = 0; i < want.size(); ++i) check_same_dataset_chain(got, i, want, i);
}

// (entry, chain) -> position: for datasets whose chain order may differ (updates).
std::map<std::pair<std::string, std::string>, size_t> by_name(const sapling::StructureDataset& ds) {
  std::map<std::pair<std::string, std::string>, size_t> out;
  for (size_t i = 0; i < ds.size(); ++i) {
    const bool fresh = out.emplace(std::make_pair(ds.metadata(i).entry, ds.metadata(i).chain), i).second;
    INFO(ds.metadata(i).entry << " " << ds.metadata(i).chain);
    CHECK(fresh);  // no chain listed twice
  }
  return out;
}

// A copy that keeps the modification time (as rsync -t does): an update sees the same file.
void copy_keeping_time(const fs::path& from, const fs::path& to) {
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::last_write_time(to, fs::last_write_time(from));
}

}  // namespace

TEST_CASE("prepare --part K/N then --merge gives the single-process dataset for N = 1, 2, 3", "[dataset][cli][parts]") {
  const auto work = sapling::test::temp_dir("prepare-parts");
  const auto single = work / "single";
  const auto r = prepare(sample_inputs(), single, " --shard-size 7");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (int n = 1; n <= 3; ++n) {
    const auto out = work / ("parts" + std::to_string(n));
    for (int k = 0; k < n; ++k) {
      const auto part = prepare(sample_inputs(), out, " --shard-size 7 --part " + std::to_string(k) + "/" + std::to_string(n));
      INFO(part.output);
      REQUIRE(part.exit_code == 0);
      CHECK(fs::exists(out / sapling::dataset_part_name(k, n) / "index.json"));
    }
    const auto merged = sapling::test::run_command(sapling::test::sapling_exe() + " prepare --merge --out " + quote(out));
    INFO(merged.output);
    REQUIRE(merged.exit_code == 0);
    CHECK(merged.output.find("merged " + std::to_string(n) + " parts") != std::string::npos);
    std::cout << "N = " << n << ": " << merged.output;
    check_same_dataset(out, single);
    // No data copied: the merged index names the parts' own shard files.
    CHECK_FALSE(fs::exists(out / "shard-00000.safetensors"));
    if (n == 2) {  // a merged dataset takes updates like any other
      const auto update = prepare(sample_inputs(), out, " --update");
      INFO(update.output);
      CHECK(update.exit_code == 0);
      CHECK(update.output.find("nothing new") != std::string::npos);
    }
  }

  // Every part is needed, and they must come from one set of options and inputs.
  const auto partial = work / "partial";
  REQUIRE(prepare(sample_inputs(), partial, " --part 0/3").exit_code == 0);
  REQUIRE(prepare(sample_inputs(), partial, " --part 2/3 --min-length 40").exit_code == 0);
  auto refused = sapling::test::run_command(sapling::test::sapling_exe() + " prepare --merge --out " + quote(partial));
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK(refused.output.find("parts not finished: 1 (absent)") != std::string::npos);
  REQUIRE(prepare(sample_inputs(), partial, " --part 1/3").exit_code == 0);
  refused = sapling::test::run_command(sapling::test::sapling_exe() + " prepare --merge --out " + quote(partial));
  CHECK(refused.exit_code == 1);
  CHECK(refused.output.find("prepared with other options than part 0") != std::string::npos);
  CHECK_FALSE(fs::exists(partial / "index.json"));

  // Bad part specifications and the environment of a Slurm array task.
  const auto bad = prepare(sample_inputs(), work / "bad", " --part 3/3");
  CHECK(bad.exit_code == 1);
  CHECK(bad.output.find("worker 3 of 3 does not exist") != std::string::npos);
  const auto slurm = sapling::test::run_command(
      "SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_COUNT=2 " + sapling::test::sapling_exe() +
      " prepare" + sample_inputs() + " --out " + quote(work / "slurm") + kFlags + " --part env");
  INFO(slurm.output);
  CHECK(slurm.exit_code == 0);
  CHECK(fs::exists(work / "slurm" / sapling::dataset_part_name(1, 2) / "index.json"));
  fs::remove_all(work);
}

TEST_CASE("a killed prepare resumes after its last journaled shard and gives the uninterrupted dataset", "[dataset][cli][resume]") {
  const auto work = sapling::test::temp_dir("prepare-resume");
  const auto whole = work / "whole";
  REQUIRE(prepare(sample_inputs(), whole, " --shard-size 5").exit_code == 0);

  const auto out = work / "killed";
  const std::string kill = "SAPLING_PREPARE_KILL_AFTER_SHARDS=3 ";
  auto killed = sapling::test::run_command(kill + sapling::test::sapling_exe() + " prepare" + sample_inputs() + " --out " +
                                           quote(out) + kFlags + " --shard-size 5");
  INFO(killed.output);
  REQUIRE(killed.exit_code == 137);
  CHECK_FALSE(fs::exists(out / "index.json"));  // never a dataset that looks finished
  CHECK(fs::exists(out / "prepare.journal"));
  CHECK(fs::exists(out / "shard-00002.safetensors"));

  // Other options: refused, naming them and --restart.
  const auto other = prepare(sample_inputs(), out, " --shard-size 5 --min-length 40");
  INFO(other.output);
  CHECK(other.exit_code == 1);
  CHECK(other.output.find("min_length") != std::string::npos);
  CHECK(other.output.find("--restart") != std::string::npos);

  const auto resumed = sapling::test::run_command(sapling::test::sapling_exe() + " prepare" + sample_inputs() + " --out " +
                                                  quote(out) + " --tokenizer foldseek_3di --valid-fraction 0.2"
                                                  " --reference-fraction 0.4 --seed 6 --shard-size 5");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.output.find("resumed an interrupted run: 3 shards") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "prepare.journal"));
  check_same_dataset(out, whole);
  // The counts cover both runs.
  const sapling::StructureDataset a(out), b(whole);
  CHECK(resumed.output.find("chains: ") != std::string::npos);
  CHECK(resumed.output.find(std::to_string(b.size()) + " kept") != std::string::npos);

  // --restart throws the journal away and starts again.
  REQUIRE(sapling::test::run_command(kill + sapling::test::sapling_exe() + " prepare" + sample_inputs() + " --out " +
                                     quote(out) + kFlags + " --shard-size 5").exit_code == 137);
  const auto restarted = prepare(sample_inputs(), out, " --shard-size 5 --restart --min-length 40");
  INFO(restarted.output);
  REQUIRE(restarted.exit_code == 0);
  CHECK(sapling::StructureDataset(out).size() < b.size());
  fs::remove_all(work);
}

TEST_CASE("prepare --update adds new files, skips unchanged ones and replaces changed ones; splits stay", "[dataset][cli][update]") {
  const auto work = sapling::test::temp_dir("prepare-update");
  const auto src = sapling::test::source_dir() / "datasets/sample";
  // The "mirror" as it was last week: half of the files.
  std::vector<fs::path> files = sapling::find_structure_files({src / "bm5", src / "psicov"});
  REQUIRE(files.size() > 10);
  for (size_t i = 0; i < files.size(); i += 2) copy_keeping_time(files[i], work / "old" / files[i].filename());
  const auto full = work / "full";
  REQUIRE(prepare(sample_inputs(), full, "").exit_code == 0);
  const auto out = work / "ds";
  REQUIRE(prepare(" " + quote(work / "old"), out, " --shard-size 6").exit_code == 0);
  const size_t before = sapling::StructureDataset(out).size();

  const auto update = prepare(sample_inputs(), out, " --shard-size 6 --update");
  INFO(update.output);
  REQUIRE(update.exit_code == 0);
  const size_t half = (files.size() + 1) / 2;
  CHECK(update.output.find("update: " + std::to_string(half) + " files already in the dataset, " +
                           std::to_string(files.size() - half) + " new, 0 changed") != std::string::npos);
  {
    const sapling::StructureDataset got(out), want(full);
    REQUIRE(got.size() == want.size());
    CHECK(got.size() > before);
    const auto names = by_name(got);
    for (size_t j = 0; j < want.size(); ++j) {
      const auto it = names.find({want.metadata(j).entry, want.metadata(j).chain});
      REQUIRE(it != names.end());
      check_same_dataset_chain(got, it->second, want, j, /*same_source=*/false);  // split, group and content included
    }
  }
  const auto again = prepare(sample_inputs(), out, " --update");
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK(again.output.find("nothing new") != std::string::npos);

  // A re-deposited entry: one file with a new modification time replaces its chains; nothing is duplicated.
  for (const auto& f : files) copy_keeping_time(f, work / "new" / f.filename());
  const fs::path touched = work / "new" / files[1].filename();
  fs::last_write_time(touched, fs::file_time_type::clock::now());
  const auto replaced = prepare(" " + quote(work / "new"), out, " --update");
  INFO(replaced.output);
  REQUIRE(replaced.exit_code == 0);
  CHECK(replaced.output.find(", 0 new, 1 changed") != std::string::npos);
  const sapling::StructureDataset got(out), want(full);
  REQUIRE(got.size() == want.size());
  by_name(got);
  size_t from_touched = 0;
  for (size_t i = 0; i < got.size(); ++i) from_touched += got.metadata(i).source == touched.string() ? 1 : 0;
  CHECK(from_touched > 0);

  // Other options than the dataset's: refused, naming the option.
  const auto other = prepare(sample_inputs(), out, " --update --min-length 40");
  INFO(other.output);
  CHECK(other.exit_code == 1);
  CHECK(other.output.find("min_length 1 -> 40") != std::string::npos);
  fs::remove_all(work);
}

TEST_CASE("a damaged index or journal is one clear error or a redone shard, never a wrong chain", "[dataset][hostile]") {
  const auto work = sapling::test::temp_dir("prepare-damaged");
  const auto out = work / "ds";
  REQUIRE(prepare(sample_inputs(), out, " --shard-size 20").exit_code == 0);
  const std::string index = sapling::read_file(out / "index.json");
  auto expect_error = [&](const std::string& from, const std::string& to, const std::string& message) {
    const size_t at = index.find(from);
    REQUIRE(at != std::string::npos);
    std::string damaged = index;
    damaged.replace(at, from.size(), to);
    sapling::write_file_atomic(out / "index.json", damaged);
    try {
      sapling::StructureDataset ds(out);
      FAIL("a damaged index was read: " << to);
    } catch (const sapling::Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(message) != std::string::npos);
    }
  };
  expect_error("\"row\":3,", "\"row\":999,", "row 999, which does not exist");
  expect_error("\"row\":3,", "\"row\":2,", "a second time");
  expect_error("\"file\":\"shard-00001.safetensors\"", "\"file\":\"../shard-00001.safetensors\"", "is not inside the dataset folder");
  expect_error("\"version\": 2", "\"version\": 3", "this build reads 1 to 2");
  sapling::write_file_atomic(out / "index.json", index);
  CHECK(sapling::StructureDataset(out).size() > 0);

  // A journal line torn by the kill (and a shard without its line) are redone on resume.
  const auto killed = work / "killed";
  REQUIRE(sapling::test::run_command("SAPLING_PREPARE_KILL_AFTER_SHARDS=2 " + sapling::test::sapling_exe() + " prepare" +
                                     sample_inputs() + " --out " + quote(killed) + kFlags + " --shard-size 20")
              .exit_code == 137);
  {
    std::ofstream torn(killed / "prepare.journal", std::ios::app);
    torn << "{\"shard\": {\"file\": \"shard-00002.safe";
  }
  const auto resumed = prepare(sample_inputs(), killed, " --shard-size 20");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  check_same_dataset(killed, out);
  fs::remove_all(work);
}
