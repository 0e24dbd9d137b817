// Parity with Foldseek createdb: `sapling tokens` on BM5 and PSICOV against Foldseek's 3Di strings, and CLI behaviour.
#include <catch2/catch.hpp>

#include <fstream>
#include <iostream>
#include <map>

#include "sapling/fasta.hpp"
#include "sapling/files.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;

std::map<std::string, std::string> fasta_map(const fs::path& path) {
  std::map<std::string, std::string> out;
  for (const auto& record : sapling::read_fasta(path)) out[record.label] = record.sequence;
  return out;
}

struct Parity {
  size_t compared = 0, residues = 0, identical = 0;
  std::vector<std::string> skipped, disagreeing;
};

// Per-residue identity over the reference chains whose residue sequence we
// reproduce exactly; the rest are listed as skipped.
Parity compare(const fs::path& ours_prefix, const std::string& reference_set) {
  const fs::path ref_dir = sapling::test::data_path("foldseek_3di");
  const auto ref_aa = fasta_map(ref_dir / (reference_set + ".aa.fasta"));
  const auto ref_3di = fasta_map(ref_dir / (reference_set + ".3di.fasta"));
  const auto our_aa = fasta_map(ours_prefix.string() + ".aa.fasta");
  const auto our_3di = fasta_map(ours_prefix.string() + ".3di.fasta");
  Parity p;
  for (const auto& [name, aa] : ref_aa) {
    auto it = our_aa.find(name);
    if (it == our_aa.end()) {
      p.skipped.push_back(name + " (no entry)");
      continue;
    }
    if (it->second != aa) {
      p.skipped.push_back(name + " (residues differ: " + std::to_string(it->second.size()) + " vs Foldseek " +
                          std::to_string(aa.size()) + ")");
      continue;
    }
    const std::string& ours = our_3di.at(name);
    const std::string& theirs = ref_3di.at(name);
    REQUIRE(ours.size() == theirs.size());
    size_t same = 0;
    for (size_t i = 0; i < ours.size(); ++i) same += ours[i] == theirs[i];
    ++p.compared;
    p.residues += ours.size();
    p.identical += same;
    if (same != ours.size())
      p.disagreeing.push_back(name + " (" + std::to_string(ours.size() - same) + " of " + std::to_string(ours.size()) +
                              " residues)");
  }
  return p;
}

void report(const std::string& set, const Parity& p) {
  const double identity = p.residues ? double(p.identical) / p.residues : 0.0;
  std::cout << "foldseek_3di parity " << set << ": identity " << identity << " (" << p.identical << " of "
            << p.residues << " residues) over " << p.compared << " chains; " << p.disagreeing.size()
            << " chains disagree, " << p.skipped.size() << " skipped\n";
  for (const auto& d : p.disagreeing) std::cout << "  disagree: " << d << "\n";
  for (const auto& s : p.skipped) std::cout << "  skipped: " << s << "\n";
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

sapling::test::CommandResult tokens(const std::string& args) {
  return sapling::test::run_command(sapling::test::sapling_exe() + " tokens " + args);
}

}  // namespace

TEST_CASE("sapling tokens matches Foldseek 3Di on BM5", "[foldseek_3di][parity]") {
  SAPLING_REQUIRE_DATA("foldseek_3di");
  SAPLING_REQUIRE_DATA("bm5");
  const auto dir = sapling::test::temp_dir("tokens-bm5");
  const auto result =
      tokens("--input " + quoted(sapling::test::data_path("bm5")) + " --out " + quoted(dir / "bm5"));
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  std::cout << result.output;
  const Parity p = compare(dir / "bm5", "bm5");
  report("bm5", p);
  CHECK(p.compared >= 870);  // of 875 reference chains
  CHECK(double(p.identical) / p.residues >= 0.995);
  // The 49 files Foldseek rejected are read here and get entries too, except
  // 16 whose first piece (before the first TER) has <= 3 residues, a chain
  // Foldseek would skip as well.
  const size_t extra = fasta_map(dir / "bm5.3di.fasta").size() - (p.compared + p.skipped.size());
  std::cout << "bm5: " << extra << " entries for files Foldseek could not read\n";
  CHECK(extra == 49 - 16);
  fs::remove_all(dir);
}

TEST_CASE("sapling tokens matches Foldseek 3Di on PSICOV chains", "[foldseek_3di][parity]") {
  SAPLING_REQUIRE_DATA("foldseek_3di");
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::temp_dir("tokens-psicov");
  std::string inputs;
  for (const auto& e : fs::directory_iterator(sapling::test::data_path("psicov")))
    if (e.path().filename().string().find(".chain.pdb.gz") != std::string::npos) inputs += " " + quoted(e.path());
  const auto result = tokens("--input" + inputs + " --out " + quoted(dir / "psicov"));
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  std::cout << result.output;
  const Parity p = compare(dir / "psicov", "psicov_chain");
  report("psicov_chain", p);
  CHECK(p.compared >= 99);  // of 100
  CHECK(double(p.identical) / p.residues >= 0.995);
  fs::remove_all(dir);
}

TEST_CASE("sapling tokens names chains like Foldseek and follows its TER rule", "[foldseek_3di]") {
  SAPLING_REQUIRE_DATA("bm5");
  SAPLING_REQUIRE_DATA("foldseek_3di");
  const auto dir = sapling::test::temp_dir("tokens-chains");
  // 1AHW_l_u has a TER at its chain break; Foldseek encodes only the part before it.
  const std::string original =
      sapling::read_maybe_gzipped(sapling::test::data_path("bm5") / "1AHW_l_u.pdb.gz");
  const auto ref_3di = fasta_map(sapling::test::data_path("foldseek_3di") / "bm5.3di.fasta").at("1AHW_l_u");
  std::string first_part, two_chains;
  {
    std::istringstream in(original);
    std::string line;
    while (std::getline(in, line) && line.rfind("TER", 0) != 0) first_part += line + "\n";
  }
  // Chain A and chain B: two copies of the first part (3Di is per chain, so both equal Foldseek's string).
  for (char chain : {'A', 'B'}) {
    std::istringstream in(first_part);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("ATOM", 0) == 0 && line.size() > 21) line[21] = chain;
      two_chains += line + "\n";
    }
    two_chains += "TER\n";
  }
  std::ofstream(dir / "two.chains.pdb") << two_chains;
  std::ofstream(dir / "garbage.pdb") << "this is not a structure\n";

  SECTION("multi-chain names get _CHAIN; unreadable files are listed and skipped") {
    const auto result = tokens("--input " + quoted(dir / "two.chains.pdb") + " " + quoted(dir / "garbage.pdb") +
                               " --out " + quoted(dir / "out"));
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    CHECK(result.output.find("1 file could not be read") != std::string::npos);
    CHECK(result.output.find("garbage.pdb") != std::string::npos);
    const auto out = fasta_map(dir / "out.3di.fasta");
    CHECK(out.size() == 2);
    CHECK(out.count("two.chains_A") == 1);
    CHECK(out.count("two.chains_B") == 1);
    CHECK(out.at("two.chains_A") == ref_3di);
    CHECK(out.at("two.chains_B") == ref_3di);
  }
  SECTION("--strict makes an unreadable file fatal") {
    const auto result = tokens("--strict --input " + quoted(dir / "two.chains.pdb") + " " + quoted(dir / "garbage.pdb") +
                               " --out " + quoted(dir / "strict"));
    INFO(result.output);
    CHECK(result.exit_code != 0);
    CHECK(result.output.find("garbage.pdb") != std::string::npos);
    CHECK(!fs::exists(dir / "strict.3di.fasta"));
  }
  SECTION("--residues all keeps the chain after its TER") {
    const fs::path file = sapling::test::data_path("bm5") / "1AHW_l_u.pdb.gz";
    const auto result = tokens("--residues all --input " + quoted(file) + " --out " + quoted(dir / "all"));
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    // The reader splits chain B at its TER into B and B_2 (two pieces: two entries).
    const auto aa = fasta_map(dir / "all.aa.fasta");
    const auto tdi = fasta_map(dir / "all.3di.fasta");
    REQUIRE(aa.size() == 2);
    CHECK(aa.at("1AHW_l_u_B").size() + aa.at("1AHW_l_u_B_2").size() == 202);  // CA atoms in the file
    CHECK(aa.at("1AHW_l_u_B").size() == 79);                                  // what Foldseek keeps
    CHECK(tdi.at("1AHW_l_u_B") == ref_3di);
    CHECK(tdi.at("1AHW_l_u_B_2").size() == aa.at("1AHW_l_u_B_2").size());
  }
  SECTION("tokenizer options from the command line") {
    const auto result = tokens("--input " + quoted(dir / "two.chains.pdb") + " --set tokenizer.min_confidence=1000 --out " +
                               quoted(dir / "masked"));
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    const auto s = fasta_map(dir / "masked.3di.fasta").at("two.chains_A");
    CHECK(s == std::string(s.size(), 'D'));
    const auto bad = tokens("--input " + quoted(dir / "two.chains.pdb") + " --set tokenizer.min_confidense=1 --out " +
                            quoted(dir / "masked"));
    CHECK(bad.exit_code != 0);
    CHECK(bad.output.find("min_confidence") != std::string::npos);
  }
  fs::remove_all(dir);
}
