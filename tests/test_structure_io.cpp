// Tests of the PDB/mmCIF reader on the real BM5 and PSICOV files and on hand-made hostile inputs.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>

#include "sapling/error.hpp"
#include "sapling/fasta.hpp"
#include "sapling/files.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using sapling::ChainStructure;
using sapling::read_structure;

namespace {


std::vector<fs::path> files_matching(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Sequence letters of the observed residues, in order.
std::string observed_letters(const ChainStructure& c) {
  std::string s;
  auto obs = c.observed.accessor<bool, 1>();
  for (int64_t i = 0; i < c.length(); ++i)
    if (obs[i]) s += c.sequence[static_cast<size_t>(i)];
  return s;
}

const ChainStructure& chain_named(const std::vector<ChainStructure>& chains, const std::string& name) {
  for (const auto& c : chains)
    if (c.chain == name) return c;
  FAIL("no chain " << name);
  throw std::logic_error("unreachable");
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Checks the invariants every ChainStructure must satisfy.
void check_consistent(const ChainStructure& c) {
  const int64_t L = c.length();
  REQUIRE(L > 0);
  REQUIRE(c.coords.sizes() == torch::IntArrayRef({L, 5, 3}));
  REQUIRE(c.observed.sizes() == torch::IntArrayRef({L}));
  REQUIRE(c.bfactor.sizes() == torch::IntArrayRef({L}));
  const auto ca_finite = torch::isfinite(c.coords.select(1, sapling::kCA)).all(1);
  REQUIRE(torch::equal(ca_finite, c.observed));
}

}  // namespace

TEST_CASE("entry names and one-letter codes", "[structure_io]") {
  CHECK(sapling::structure_entry_name("/x/1ABC_r_u.pdb.gz") == "1ABC_r_u");
  CHECK(sapling::structure_entry_name("1a3a.chain.pdb.gz") == "1a3a.chain");
  CHECK(sapling::structure_entry_name("4hhb.cif") == "4hhb");
  CHECK(sapling::structure_entry_name("pdb1abc.ent.gz") == "pdb1abc");
  CHECK(sapling::residue_one_letter("MSE") == 'M');
  CHECK(sapling::residue_one_letter("SEP") == 'S');
  CHECK(sapling::residue_one_letter("ALA") == 'A');
  CHECK(sapling::residue_one_letter("HOH") == 'X');
  CHECK(sapling::residue_one_letter("ZZZ") == 'X');
}

TEST_CASE("every BM5 file is read, including those with junk in columns 67-80", "[structure_io]") {
  SAPLING_REQUIRE_DATA("bm5");
  const auto files = files_matching(sapling::test::data_path("bm5"), ".pdb.gz");
  REQUIRE(files.size() == 924);
  int repaired_files = 0;
  size_t chains = 0, residues = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& file : files) {
    INFO(file.string());
    sapling::StructureReadReport report;
    std::vector<ChainStructure> read;
    REQUIRE_NOTHROW(read = read_structure(file, {}, &report));
    REQUIRE(!read.empty());
    if (report.repaired_lines > 0) ++repaired_files;
    for (const auto& c : read) {
      check_consistent(c);
      CHECK(c.entry == sapling::structure_entry_name(file));
      CHECK(c.resolution == 0);  // BM5 has no header records
      residues += static_cast<size_t>(c.length());
    }
    chains += read.size();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "BM5: " << files.size() << " files, " << chains << " chains, " << residues << " residues, "
            << repaired_files << " files repaired, " << files.size() / seconds << " files/s\n";
  // The data README counts 49 files that gemmi rejects without the repair.
  CHECK(repaired_files >= 34);
}

TEST_CASE("a repaired BM5 file keeps its coordinates", "[structure_io]") {
  SAPLING_REQUIRE_DATA("bm5");
  // 1ACB_l_b-matched carries "   1  B   1930"-style text in columns 67-80.
  const auto file = sapling::test::data_path("bm5") / "1ACB_l_b-matched.pdb.gz";
  std::string text = sapling::read_maybe_gzipped(file);
  std::string repaired = text;
  REQUIRE(sapling::repair_pdb_columns(repaired) > 0);
  CHECK(repaired.size() == text.size());
  // Columns 1-66 (coordinates, occupancy, B) are untouched.
  size_t a = 0, b = 0;
  while (a < text.size()) {
    const size_t ea = text.find('\n', a), eb = repaired.find('\n', b);
    REQUIRE(ea - a == eb - b);
    CHECK(text.compare(a, std::min<size_t>(66, ea - a), repaired, b, std::min<size_t>(66, eb - b)) == 0);
    if (ea == std::string::npos) break;
    a = ea + 1;
    b = eb + 1;
  }
  const auto chains = read_structure(file);
  REQUIRE(!chains.empty());
  CHECK(torch::isfinite(chains[0].coords.select(1, sapling::kCA)).all().item<bool>());
}

TEST_CASE("every PSICOV structure is read, the chain file matches ID.fasta", "[structure_io]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::data_path("psicov");
  const auto chain_files = files_matching(dir, ".chain.pdb.gz");
  REQUIRE(chain_files.size() == 100);
  int with_header = 0, fasta_matches = 0;
  sapling::StructureReadReport report;  // summed over the 100 full entries
  for (const auto& chain_file : chain_files) {
    INFO(chain_file.string());
    const std::string id = chain_file.filename().string().substr(0, 4);
    std::vector<ChainStructure> whole, single;
    REQUIRE_NOTHROW(whole = read_structure(dir / (id + ".pdb.gz"), {}, &report));
    REQUIRE_NOTHROW(single = read_structure(chain_file));
    REQUIRE(single.size() == 1);
    for (const auto& c : whole) check_consistent(c);
    check_consistent(single[0]);
    const auto fasta = sapling::read_fasta(dir / (id + ".fasta"));
    REQUIRE(fasta.size() == 1);
    if (single[0].sequence == fasta[0].sequence) ++fasta_matches;
    // High-resolution X-ray set: header metadata is present.
    if (whole[0].method == "X-RAY DIFFRACTION" && whole[0].resolution > 0.5 && whole[0].resolution <= 2.0)
      ++with_header;
  }
  std::cout << "PSICOV: chain-file sequence == ID.fasta for " << fasta_matches << "/100; X-ray <= 2.0 A header for "
            << with_header << "/100\n";
  std::cout << "PSICOV full entries: " << report.chains_with_full_sequence << " chains placed on SEQRES, "
            << report.full_sequence_fallbacks << " fallbacks to observed-only, " << report.modified_residues
            << " modified residues, " << report.altloc_residues << " residues with altlocs, "
            << report.residues_without_ca << " residues without CA, " << report.skipped_chains
            << " non-protein chains skipped\n";
  CHECK(fasta_matches == 100);
  CHECK(with_header == 100);
  CHECK(report.full_sequence_fallbacks == 0);
}

TEST_CASE("SEQRES makes missing residues explicit (1ne2 chain A, 1aap)", "[structure_io]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::data_path("psicov");
  // 1ne2: SEQRES has 200 residues for chain A; REMARK 465 lists 24 missing:
  // GSH at -2..0, NFKNYLEQ at 19-26, GSVVKHS at 118-124, RHHSYD at 176-181.
  // The first SEQRES residue is GLY -2, so position i holds residue number i-2.
  const auto whole = read_structure(dir / "1ne2.pdb.gz");
  const auto& a = chain_named(whole, "A");
  REQUIRE(a.length() == 200);
  CHECK(a.observed.sum().item<int64_t>() == 176);
  auto obs = a.observed.accessor<bool, 1>();
  std::string missing;
  for (int64_t i = 0; i < a.length(); ++i)
    if (!obs[i]) missing += a.sequence[static_cast<size_t>(i)];
  CHECK(missing == "GSHNFKNYLEQGSVVKHSRHHSYD");
  CHECK(a.sequence.substr(21, 8) == "NFKNYLEQ");  // residues 19-26
  CHECK_FALSE(obs[21]);
  CHECK_FALSE(obs[28]);
  CHECK(obs[29]);
  CHECK(torch::isnan(a.coords[21]).all().item<bool>());
  CHECK(std::isnan(a.bfactor[21].item<float>()));
  // Observed residues, in order, are the chain file's residues (== ID.fasta, MSE as M).
  const auto fasta = sapling::read_fasta(dir / "1ne2.fasta");
  CHECK(observed_letters(a) == fasta[0].sequence);
  CHECK(a.sequence.substr(3, 3) == "MGI");  // SEQRES "MSE GLY ILE"

  // 1aap: SEQRES 58 residues, the last two (SER ALA) not located.
  const auto aap = read_structure(dir / "1aap.pdb.gz");
  const auto& aap_a = chain_named(aap, "A");
  CHECK(aap_a.length() == 58);
  CHECK(aap_a.sequence == sapling::read_fasta(dir / "1aap.fasta")[0].sequence + "SA");
  CHECK(aap_a.observed.sum().item<int64_t>() == 56);
  CHECK(aap_a.method == "X-RAY DIFFRACTION");
  CHECK(aap_a.resolution == Approx(1.5));
  // First atom of the file: VAL A 1, CA at (25.208, 29.501, 43.534), B 38.68.
  CHECK(aap_a.coords[0][sapling::kCA][0].item<float>() == Approx(25.208f));
  CHECK(aap_a.coords[0][sapling::kCA][2].item<float>() == Approx(43.534f));
  CHECK(aap_a.bfactor[0].item<float>() == Approx(38.68f));
}

TEST_CASE("BM5 chains split by TER are kept (antibody L + H as chain A), Foldseek's sequences agree", "[structure_io]") {
  SAPLING_REQUIRE_DATA("bm5");
  SAPLING_REQUIRE_DATA("foldseek_3di");
  // 1AHW_r_u: chain A = light chain (1-214), TER, heavy chain (401-614).
  // Foldseek (and plain gemmi) keep only the part before the TER; here the
  // second part becomes chain "A_2".
  const auto bm5 = sapling::test::data_path("bm5");
  const auto chains = read_structure(bm5 / "1AHW_r_u.pdb.gz");
  REQUIRE(chains.size() == 2);
  CHECK(chains[0].chain == "A");
  CHECK(chains[1].chain == "A_2");
  CHECK(chains[0].length() == 214);
  CHECK(chains[1].length() == 214);
  CHECK(chains[1].sequence.substr(0, 5) == "EIQLQ");
  CHECK(chains[1].observed.all().item<bool>());

  // Every Foldseek entry equals our chain's observed residues.
  const auto foldseek = sapling::read_fasta(sapling::test::data_path("foldseek_3di") / "bm5.aa.fasta");
  std::map<std::string, std::string> ours;
  for (const auto& file : files_matching(bm5, ".pdb.gz")) {
    const auto read = read_structure(file);
    for (const auto& c : read) {
      // Foldseek keeps residues with a CA only; ours has CA-less ones unobserved.
      ours.emplace(c.entry, observed_letters(c));  // first chain: Foldseek's single-chain entry
      ours[c.entry + "_" + c.chain] = observed_letters(c);
    }
  }
  int equal = 0, other = 0;
  for (const auto& record : foldseek) {
    INFO(record.label);
    auto it = ours.find(record.label);
    REQUIRE(it != ours.end());
    if (it->second == record.sequence) {
      ++equal;
    } else {
      ++other;
      WARN(record.label << ": foldseek " << record.sequence << "\n ours " << it->second);
    }
  }
  std::cout << "BM5 vs Foldseek sequences: " << foldseek.size() << " entries, " << equal << " equal, " << other
            << " different\n";
  CHECK(other == 0);
}

TEST_CASE("R-free from REMARK 3 (1a3a: 0.242)", "[structure_io]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto chains = read_structure(sapling::test::data_path("psicov") / "1a3a.pdb.gz");
  CHECK(chains[0].r_free == Approx(0.242));
}

TEST_CASE("MSE maps to M", "[structure_io]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::data_path("psicov");
  sapling::StructureReadReport report;
  const auto chains = read_structure(dir / "1lpy.pdb.gz", {}, &report);
  CHECK(report.modified_residues > 0);
  for (const auto& c : chains) CHECK(c.sequence.find('X') == std::string::npos);
  // SEQADV: MSE A 1 (MODIFIED RESIDUE) -> the chain starts with M.
  CHECK(chain_named(chains, "A").sequence[0] == 'M');
}

TEST_CASE("alternate locations: highest occupancy wins, ties keep the first", "[structure_io]") {
  SAPLING_REQUIRE_DATA("psicov");
  // Real file, tie (0.50/0.50): ARG A 4 of 1pko keeps altloc A.
  const auto chains = read_structure(sapling::test::data_path("psicov") / "1pko.pdb.gz");
  const auto& a = chain_named(chains, "A");
  bool found = false;
  for (int64_t i = 0; i < a.length(); ++i) {
    const auto ca = a.coords[i][sapling::kCA];
    if (std::abs(ca[0].item<float>() - 0.663f) < 1e-3f && std::abs(ca[1].item<float>() - 13.569f) < 1e-3f) found = true;
    CHECK_FALSE((std::abs(ca[0].item<float>() - 0.679f) < 1e-3f && std::abs(ca[1].item<float>() - 13.618f) < 1e-3f));
  }
  CHECK(found);

  // Hand-made: altloc B has the higher occupancy.
  const std::string pdb =
      "ATOM      1  N   GLY A   1      10.000  10.000  10.000  1.00 10.00           N\n"
      "ATOM      2  CA  GLY A   1      11.000  10.000  10.000  1.00 11.00           C\n"
      "ATOM      3  C   GLY A   1      12.000  10.000  10.000  1.00 12.00           C\n"
      "ATOM      4  O   GLY A   1      12.500  11.000  10.000  1.00 13.00           O\n"
      "ATOM      5  N   SER A   2      13.000  10.000  10.000  1.00 10.00           N\n"
      "ATOM      6  CA ASER A   2      14.000  10.000  10.000  0.30 20.00           C\n"
      "ATOM      7  CA BSER A   2      14.000  20.000  10.000  0.70 30.00           C\n"
      "ATOM      8  CB ASER A   2      15.000  10.000  10.000  0.30 20.00           C\n"
      "ATOM      9  CB BSER A   2      15.000  20.000  10.000  0.70 30.00           C\n"
      "ATOM     10  C   SER A   2      16.000  10.000  10.000  1.00 10.00           C\n"
      "ATOM     11  O   SER A   2      16.500  11.000  10.000  1.00 10.00           O\n"
      "ATOM     12  H   SER A   2      13.000  11.000  10.000  1.00 10.00           H\n"
      "HETATM   13  O   HOH A 101      30.000  30.000  30.000  1.00 10.00           O\n"
      "END\n";
  sapling::StructureReadReport report;
  const auto hand = sapling::read_structure_from_memory(pdb, "hand.pdb", {}, &report);
  REQUIRE(hand.size() == 1);
  CHECK(hand[0].sequence == "GS");
  CHECK(hand[0].entry == "hand");
  CHECK(hand[0].coords[1][sapling::kCA][1].item<float>() == Approx(20.0f));
  CHECK(hand[0].coords[1][sapling::kCB][1].item<float>() == Approx(20.0f));
  CHECK(hand[0].bfactor[1].item<float>() == Approx(30.0f));
  CHECK(std::isnan(hand[0].coords[0][sapling::kCB][0].item<float>()));  // GLY has no CB
  CHECK(report.altloc_residues == 1);
}

TEST_CASE("residues without CA stay in the sequence, unobserved", "[structure_io]") {
  const std::string pdb =
      "ATOM      1  N   ALA A   1      10.000  10.000  10.000  1.00 10.00           N\n"
      "ATOM      2  CA  ALA A   1      11.000  10.000  10.000  1.00 11.00           C\n"
      "ATOM      3  C   ALA A   1      12.000  10.000  10.000  1.00 12.00           C\n"
      "ATOM      4  N   LYS A   2      13.000  10.000  10.000  1.00 10.00           N\n"
      "ATOM      5  C   LYS A   2      14.000  10.000  10.000  1.00 10.00           C\n"
      "ATOM      6  N   TRP A   3      15.000  10.000  10.000  1.00 10.00           N\n"
      "ATOM      7  CA  TRP A   3      16.000  10.000  10.000  1.00 10.00           C\n"
      "ATOM      8  C   TRP A   3      17.000  10.000  10.000  1.00 10.00           C\n"
      "END\n";
  sapling::StructureReadReport report;
  const auto chains = sapling::read_structure_from_memory(pdb, "noca.pdb", {}, &report);
  REQUIRE(chains.size() == 1);
  CHECK(chains[0].sequence == "AKW");
  CHECK(chains[0].observed[1].item<bool>() == false);
  CHECK(torch::isnan(chains[0].coords[1]).all().item<bool>());
  CHECK(report.residues_without_ca == 1);
}

TEST_CASE("chain filter, nucleic acids and ligand-only chains", "[structure_io]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::data_path("psicov");
  sapling::StructureReadOptions options;
  options.chains = {"B"};
  const auto b = read_structure(dir / "1aap.pdb.gz", options);
  REQUIRE(b.size() == 1);
  CHECK(b[0].chain == "B");
  options.chains = {"Q"};
  CHECK_THROWS_WITH(read_structure(dir / "1aap.pdb.gz", options), Catch::Contains("no protein chain"));

  const std::string dna =
      "ATOM      1  P    DA B   1      10.000  10.000  10.000  1.00 10.00           P\n"
      "ATOM      2  C4'  DA B   1      11.000  10.000  10.000  1.00 10.00           C\n"
      "ATOM      3  P    DT B   2      13.000  10.000  10.000  1.00 10.00           P\n"
      "ATOM      4  C4'  DT B   2      14.000  10.000  10.000  1.00 10.00           C\n"
      "TER\n"
      "ATOM      5  N   ALA A   1      10.000  10.000  10.000  1.00 10.00           N\n"
      "ATOM      6  CA  ALA A   1      11.000  10.000  10.000  1.00 11.00           C\n"
      "ATOM      7  C   ALA A   1      12.000  10.000  10.000  1.00 12.00           C\n"
      "END\n";
  const auto mixed = sapling::read_structure_from_memory(dna, "mixed.pdb");
  REQUIRE(mixed.size() == 1);
  CHECK(mixed[0].chain == "A");
}

TEST_CASE("hostile inputs give clean errors naming the file", "[structure_io]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::temp_dir("structure-io");
  const auto empty = dir / "empty.pdb";
  write_text(empty, "");
  CHECK_THROWS_WITH(read_structure(empty), Catch::Contains("empty.pdb") && Catch::Contains("empty file"));

  const auto blank = dir / "blank.cif";
  write_text(blank, "\n\n   \n");
  CHECK_THROWS_WITH(read_structure(blank), Catch::Contains("blank.cif") && Catch::Contains("empty"));

  const std::string gz = sapling::read_file(sapling::test::data_path("psicov") / "1aap.pdb.gz");
  const auto truncated = dir / "truncated.pdb.gz";
  write_text(truncated, gz.substr(0, gz.size() / 2));
  CHECK_THROWS_WITH(read_structure(truncated), Catch::Contains("truncated.pdb.gz") && Catch::Contains("truncated"));

  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919u + 13u) % 256u);
  const auto binary = dir / "garbage.pdb";
  write_text(binary, garbage);
  CHECK_THROWS_WITH(read_structure(binary), Catch::Contains("garbage.pdb") && Catch::Contains("binary"));

  const auto hetatm = dir / "ligand.pdb";
  write_text(hetatm,
             "HETATM    1  C1  LIG A 201      10.000  10.000  10.000  1.00 10.00           C\n"
             "HETATM    2  O   HOH A 301      11.000  10.000  10.000  1.00 10.00           O\n"
             "END\n");
  CHECK_THROWS_WITH(read_structure(hetatm), Catch::Contains("ligand.pdb") && Catch::Contains("no protein chain"));

  const auto text = dir / "notes.pdb";
  write_text(text, "this is not a structure file\njust some words\n");
  CHECK_THROWS_WITH(read_structure(text), Catch::Contains("notes.pdb"));

  const auto broken_cif = dir / "broken.cif";
  write_text(broken_cif, "data_x\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1\n");
  CHECK_THROWS_WITH(read_structure(broken_cif), Catch::Contains("broken.cif"));

  CHECK_THROWS_WITH(read_structure(dir / "missing.pdb"), Catch::Contains("missing.pdb"));
  fs::remove_all(dir);
}

TEST_CASE("mmCIF: entity_poly_seq gives the full sequence, metadata from _exptl and _refine", "[structure_io]") {
  const std::string cif = R"(data_TEST
_exptl.entry_id TEST
_exptl.method 'X-RAY DIFFRACTION'
_refine.entry_id TEST
_refine.pdbx_refine_id 'X-RAY DIFFRACTION'
_refine.ls_d_res_high 1.80
_refine.ls_R_factor_R_free 0.215
loop_
_entity.id
_entity.type
1 polymer
2 water
loop_
_entity_poly.entity_id
_entity_poly.type
1 'polypeptide(L)'
loop_
_entity_poly_seq.entity_id
_entity_poly_seq.num
_entity_poly_seq.mon_id
1 1 MET
1 2 ALA
1 3 GLY
1 4 LYS
loop_
_atom_site.group_PDB
_atom_site.id
_atom_site.type_symbol
_atom_site.label_atom_id
_atom_site.label_alt_id
_atom_site.label_comp_id
_atom_site.label_asym_id
_atom_site.label_entity_id
_atom_site.label_seq_id
_atom_site.Cartn_x
_atom_site.Cartn_y
_atom_site.Cartn_z
_atom_site.occupancy
_atom_site.B_iso_or_equiv
_atom_site.auth_seq_id
_atom_site.auth_asym_id
_atom_site.pdbx_PDB_model_num
ATOM 1 N N . MET A 1 1 1.0 2.0 3.0 1.0 10.0 1 B 1
ATOM 2 C CA . MET A 1 1 2.0 2.0 3.0 1.0 11.0 1 B 1
ATOM 3 C C . MET A 1 1 3.0 2.0 3.0 1.0 12.0 1 B 1
ATOM 4 O O . MET A 1 1 3.5 3.0 3.0 1.0 13.0 1 B 1
ATOM 5 C CB . MET A 1 1 2.0 1.0 3.0 1.0 14.0 1 B 1
ATOM 6 N N . ALA A 1 2 4.0 2.0 3.0 1.0 20.0 2 B 1
ATOM 7 C CA . ALA A 1 2 5.0 2.0 3.0 1.0 21.0 2 B 1
ATOM 8 C C . ALA A 1 2 6.0 2.0 3.0 1.0 22.0 2 B 1
ATOM 9 N N . LYS A 1 4 10.0 2.0 3.0 1.0 40.0 4 B 1
ATOM 10 C CA . LYS A 1 4 11.0 2.0 3.0 1.0 41.0 4 B 1
ATOM 11 C C . LYS A 1 4 12.0 2.0 3.0 1.0 42.0 4 B 1
HETATM 12 O O . HOH C 2 . 20.0 20.0 20.0 1.0 50.0 101 B 1
)";
  const auto chains = sapling::read_structure_from_memory(cif, "test.cif.gz");
  REQUIRE(chains.size() == 1);
  const auto& c = chains[0];
  CHECK(c.entry == "test");
  CHECK(c.chain == "B");
  CHECK(c.sequence == "MAGK");
  CHECK(c.observed[2].item<bool>() == false);
  CHECK(c.observed.sum().item<int64_t>() == 3);
  CHECK(c.coords[3][sapling::kCA][0].item<float>() == Approx(11.0f));
  CHECK(c.coords[0][sapling::kCB][1].item<float>() == Approx(1.0f));
  CHECK(c.bfactor[1].item<float>() == Approx(21.0f));
  CHECK(c.method == "X-RAY DIFFRACTION");
  CHECK(c.resolution == Approx(1.8));
  CHECK(c.r_free == Approx(0.215));
}

TEST_CASE("first model only, unless keep_all_models", "[structure_io]") {
  const std::string nmr =
      "MODEL        1\n"
      "ATOM      1  N   ALA A   1      10.000  10.000  10.000  1.00  0.00           N\n"
      "ATOM      2  CA  ALA A   1      11.000  10.000  10.000  1.00  0.00           C\n"
      "ATOM      3  C   ALA A   1      12.000  10.000  10.000  1.00  0.00           C\n"
      "ENDMDL\n"
      "MODEL        2\n"
      "ATOM      1  N   ALA A   1      20.000  10.000  10.000  1.00  0.00           N\n"
      "ATOM      2  CA  ALA A   1      21.000  10.000  10.000  1.00  0.00           C\n"
      "ATOM      3  C   ALA A   1      22.000  10.000  10.000  1.00  0.00           C\n"
      "ENDMDL\n"
      "END\n";
  const auto first = sapling::read_structure_from_memory(nmr, "nmr.pdb");
  REQUIRE(first.size() == 1);
  CHECK(first[0].coords[0][sapling::kCA][0].item<float>() == Approx(11.0f));
  sapling::StructureReadOptions options;
  options.keep_all_models = true;
  const auto all = sapling::read_structure_from_memory(nmr, "nmr.pdb", options);
  REQUIRE(all.size() == 2);
  CHECK(all[1].entry == "nmr_model2");
  CHECK(all[1].coords[0][sapling::kCA][0].item<float>() == Approx(21.0f));
}
