// `sapling data list/fetch/verify` and the manifest: a real data set copied from a mirror and checked, and every
// way a mirror or a manifest can be wrong giving one clear error.
#include <catch2/catch.hpp>

#include <fstream>

#include "sapling/internal/data_registry.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using sapling::test::run_command;

namespace {

using sapling::test::quote;
std::string data_cli() { return sapling::test::sapling_exe() + " data "; }

// A mirror holding one small real data set (the TEM-1 scan: 2 files), or part of it.
struct TinyMirror {
  fs::path root = sapling::test::temp_dir("data-mirror");
};

}  // namespace

TEST_CASE("the shipped manifest lists every data set with a checksum for each file", "[data]") {
  const auto manifest = sapling::DataManifest::load(sapling::test::source_dir() / "datasets/manifest.toml");
  CHECK(manifest.data_sets().size() >= 13);
  const auto& bm5 = manifest.find("bm5");
  CHECK(bm5.files.size() == 925);  // 924 structures + LICENSE
  CHECK(bm5.path == "data/structures/bm5");
  for (const auto& set : manifest.data_sets()) {
    INFO(set.name);
    CHECK_FALSE(set.licence.empty());
    CHECK(set.bytes > 0);
    CHECK_FALSE(set.files.empty());
  }
  CHECK_THROWS_WITH(manifest.find("bm6"), Contains("no data set named 'bm6'") && Contains("did you mean 'bm5'"));
}

TEST_CASE("sha256 of a file equals sha256sum's (hand-checked digest of 'abc')", "[data]") {
  const auto dir = sapling::test::temp_dir("sha");
  std::ofstream(dir / "abc", std::ios::binary) << "abc";
  CHECK(sapling::sha256_of_file(dir / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::ofstream(dir / "empty", std::ios::binary).flush();
  CHECK(sapling::sha256_of_file(dir / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  fs::remove_all(dir);
}

TEST_CASE("sapling data fetch copies from a mirror, verifies, and list shows it present", "[data][cli]") {
  SAPLING_REQUIRE_DATA("dms_tem1");
  const auto source = sapling::test::data_path("dms_tem1");  // a verified copy: data/downstream/dms
  TinyMirror m;
  fs::create_directories(m.root / "data/downstream");
  fs::copy(source, m.root / "data/downstream/dms", fs::copy_options::recursive);
  const auto to = sapling::test::temp_dir("data-to");
  const std::string base = data_cli() + "--to " + quote(to) + " ";

  auto r = run_command(base + "list");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("dms_tem1") && Contains("absent"));

  r = run_command(base + "fetch dms_tem1 --mirror " + quote(m.root));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("dms_tem1: 2 copied") && Contains("all 2 verified"));
  CHECK(fs::exists(to / "data/downstream/dms/BLAT_ECOLX.fasta"));
  r = run_command(base + "list");
  CHECK_THAT(r.output, Contains("present"));
  // Again: nothing copied, everything re-verified.
  r = run_command(base + "fetch dms_tem1 --mirror " + quote(m.root));
  CHECK_THAT(r.output, Contains("0 copied") && Contains("2 already present"));
  r = run_command(base + "verify dms_tem1");
  CHECK(r.exit_code == 0);

  // A file damaged after the fetch: verify names it, exits 1, and the set is no longer "present".
  { std::ofstream(to / "data/downstream/dms/BLAT_ECOLX.fasta", std::ios::app) << "X"; }
  r = run_command(base + "verify dms_tem1");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains("BLAT_ECOLX.fasta: checksum"));
  r = run_command(base + "list");
  CHECK_THAT(r.output, Contains("partial"));
  // fetch repairs it from the mirror.
  r = run_command(base + "fetch dms_tem1 --mirror " + quote(m.root));
  CHECK_THAT(r.output, Contains("1 copied") && Contains("1 already present"));
  fs::remove_all(m.root);
  fs::remove_all(to);
}

TEST_CASE("sapling data: a corrupt or missing mirror file, no mirror, an unknown name are one clear error", "[data][cli][hostile]") {
  SAPLING_REQUIRE_DATA("dms_tem1");
  const auto source = sapling::test::data_path("dms_tem1");
  TinyMirror m;
  fs::create_directories(m.root / "data/downstream/dms");
  fs::copy_file(source / "BLAT_ECOLX.fasta", m.root / "data/downstream/dms/BLAT_ECOLX.fasta");
  const auto to = sapling::test::temp_dir("data-bad");
  const std::string base = data_cli() + "--to " + quote(to) + " ";
  auto clean_failure = [](const sapling::test::CommandResult& r) {
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK(r.output.rfind("error: ", 0) == 0);
  };

  // Missing file: named, with its place in the checksum list.
  auto r = run_command(base + "fetch dms_tem1 --mirror " + quote(m.root));
  clean_failure(r);
  CHECK_THAT(r.output, Contains("BLAT_ECOLX_Ranganathan2015.csv.gz") && Contains("the mirror has no"));

  // Corrupt (truncated) file: checksum mismatch, and nothing left under its final name.
  const std::string csv = sapling::read_file(source / "BLAT_ECOLX_Ranganathan2015.csv.gz");
  std::ofstream(m.root / "data/downstream/dms/BLAT_ECOLX_Ranganathan2015.csv.gz", std::ios::binary) << csv.substr(0, csv.size() / 2);
  r = run_command(base + "fetch dms_tem1 --mirror " + quote(m.root));
  clean_failure(r);
  CHECK_THAT(r.output, Contains("checksum mismatch") && Contains("nothing was written"));
  CHECK_FALSE(fs::exists(to / "data/downstream/dms/BLAT_ECOLX_Ranganathan2015.csv.gz"));
  for (const auto& e : fs::directory_iterator(to / "data/downstream/dms")) CHECK(e.path().filename().string().find(".part") == std::string::npos);

  // No mirror at all (and none in the environment).
  r = run_command("env -u SAPLING_DATA_MIRROR " + base + "fetch dms_tem1");
  clean_failure(r);
  CHECK_THAT(r.output, Contains("no mirror given") && Contains("github.com/facebookresearch/esm"));

  // Unknown name: nothing is fetched, close names suggested.
  r = run_command(base + "fetch dms_tem2 --mirror " + quote(m.root));
  clean_failure(r);
  CHECK_THAT(r.output, Contains("no data set named 'dms_tem2'") && Contains("did you mean 'dms_tem1'"));

  // A mirror folder that does not exist.
  r = run_command(base + "fetch dms_tem1 --mirror " + quote(m.root / "nowhere"));
  clean_failure(r);
  CHECK_THAT(r.output, Contains("is not a folder"));
  fs::remove_all(m.root);
  fs::remove_all(to);
}

TEST_CASE("a damaged manifest or checksum list names the file and line", "[data][hostile]") {
  const auto dir = sapling::test::temp_dir("manifest");
  auto load_error = [&](const std::string& manifest, const std::string& checksums) {
    std::ofstream(dir / "manifest.toml") << manifest;
    std::ofstream(dir / "sums.sha256") << checksums;
    try {
      sapling::DataManifest::load(dir / "manifest.toml");
    } catch (const sapling::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string good_sum = std::string(64, 'a') + "  file.txt\n";
  const std::string entry = "[x]\nsummary = \"s\"\npath = \"p\"\nlicence = \"l\"\ncitation = \"c\"\nsource = \"u\"\nbytes = 1\n";
  CHECK(load_error(entry + "checksums = \"sums.sha256\"\n", good_sum) == "no error");
  CHECK_THAT(load_error(entry, good_sum), Contains("manifest.toml:1: [x]: missing key 'checksums'"));
  CHECK_THAT(load_error(entry + "checksums = \"sums.sha256\"\nsize = 3\n", good_sum), Contains("manifest.toml:9: [x] unknown key 'size'"));
  CHECK_THAT(load_error(entry + "checksums = \"sums.sha256\"\n", "abc  file.txt\n"), Contains("sums.sha256:1: expected '<sha256>  <path>'"));
  CHECK_THAT(load_error(entry + "checksums = \"sums.sha256\"\n", std::string(64, 'A') + "  file.txt\n"), Contains("is not a lower-case hex SHA-256"));
  CHECK_THAT(load_error(entry + "checksums = \"sums.sha256\"\n", std::string(64, 'a') + "  ../escape\n"), Contains("must be relative and stay inside"));
  CHECK_THAT(load_error(entry + "checksums = \"sums.sha256\"\n", good_sum + good_sum), Contains("sums.sha256:2: 'file.txt' is listed twice"));
  CHECK_THAT(load_error(entry + "checksums = \"missing.sha256\"\n", good_sum), Contains("missing.sha256: cannot open"));
  CHECK_THAT(load_error("[x\n", good_sum), Contains("manifest.toml:1"));
  CHECK_THAT(load_error("[x]\npath = \"../up\"\n", good_sum), Contains("missing key 'summary'"));
  fs::remove_all(dir);
}
