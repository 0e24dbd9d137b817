// Hostile inputs for the core readers (safetensors, structures, FASTA, recipes, plugin folders): each ends in one
// sapling::Error naming the file (and line/key/byte), or exit status 1 from the CLI; never a crash, hang or huge allocation.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <fstream>

#include "sapling/error.hpp"
#include "sapling/fasta.hpp"
#include "sapling/files.hpp"
#include "sapling/recipe.hpp"
#include "sapling/safetensors.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using sapling::test::run_command;

namespace {

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

using sapling::test::quote;

// The message of the sapling::Error `f` throws; fails the test when it throws nothing or something else.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const sapling::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("not a sapling::Error: " << e.what());
  }
  FAIL("no error");
  return "";
}

// A CLI failure is exit status 1 with one "error: ..." line, not a signal or an abort.
void check_clean_cli_failure(const sapling::test::CommandResult& r) {
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("terminate called") == std::string::npos);
  CHECK(r.output.find("Aborted") == std::string::npos);
  CHECK(r.output.find("Segmentation") == std::string::npos);
}

// Raw safetensors image: 8-byte little-endian header length, header, data.
std::string safetensors_image(const std::string& header, const std::string& data, uint64_t claimed_len) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((claimed_len >> (8 * i)) & 0xff));
  return out + header + data;
}
std::string safetensors_image(const std::string& header, const std::string& data = "") {
  return safetensors_image(header, data, header.size());
}

std::string header_error(const std::string& bytes) {
  return error_of([&] {
    sapling::parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "h.safetensors");
  });
}

const std::string kAtom = "ATOM  ";
// One PDB ATOM line with the given fields (coordinates as 8-character strings).
std::string atom_line(int serial, const std::string& atom, const std::string& res, char chain, const std::string& seq,
                      const std::string& x, const std::string& y = "  10.000", const std::string& z = "  10.000") {
  char buf[100];
  std::snprintf(buf, sizeof(buf), "ATOM  %5d  %-3s %3s %c%5s   %8s%8s%8s  1.00 10.00           %c\n", serial,
                atom.c_str(), res.c_str(), chain, seq.c_str(), x.c_str(), y.c_str(), z.c_str(), atom[0]);
  return buf;
}

// Three backbone atoms (N, CA, C) of one residue; `seq` may carry an insertion code ("52A").
std::string residue(int& serial, const std::string& res, const std::string& seq, double x, char chain = 'A') {
  char cx[16], cx1[16], cx2[16];
  std::snprintf(cx, sizeof(cx), "%8.3f", x);
  std::snprintf(cx1, sizeof(cx1), "%8.3f", x + 1);
  std::snprintf(cx2, sizeof(cx2), "%8.3f", x + 2);
  std::string out = atom_line(serial++, "N", res, chain, seq, cx);
  out += atom_line(serial++, "CA", res, chain, seq, cx1);
  out += atom_line(serial++, "C", res, chain, seq, cx2);
  return out;
}

// The invariants consumers rely on: observed == finite CA, and every coordinate is either NaN (absent) or a
// plausible finite number (never inf or 1e30).
void check_observed_finite(const sapling::ChainStructure& c) {
  const auto ca_finite = torch::isfinite(c.coords.select(1, sapling::kCA)).all(1);
  CHECK(torch::equal(ca_finite, c.observed));
  const auto present = c.coords.isnan().logical_not();
  CHECK(torch::isfinite(c.coords.index({present})).all().item<bool>());
  CHECK((c.coords.index({present}).abs() < 1e5).all().item<bool>());
}

}  // namespace

// ------------------------------------------------------------------ safetensors

TEST_CASE("hostile safetensors headers beyond the basic cases", "[hostile][safetensors]") {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  SECTION("header length 2^64-1") {
    CHECK_THAT(header_error(safetensors_image("{}", "", ~uint64_t{0})), Catch::Contains("exceeds the file size"));
  }
  SECTION("deeply nested JSON (no stack overflow)") {
    const std::string nested = std::string(200000, '[') + std::string(200000, ']');
    CHECK_THAT(header_error(safetensors_image(nested)), Catch::Contains("h.safetensors: header must be a JSON object"));
  }
  SECTION("unterminated deeply nested JSON") {
    CHECK_THAT(header_error(safetensors_image(std::string(100000, '{'))), Catch::Contains("invalid JSON"));
  }
  SECTION("bytes that are not UTF-8") {
    CHECK_THAT(header_error(safetensors_image("{\"a\xff\xfe\":1}")), Catch::Contains("invalid JSON in header (bytes 8.."));
  }
  SECTION("negative offset") {
    CHECK_THAT(header_error(safetensors_image(R"({"a":{)" + f32x2 + R"(,"data_offsets":[-8,0]}})", std::string(8, '\0'))),
               Catch::Contains("tensor 'a'") && Catch::Contains("non-negative"));
  }
  SECTION("end before begin") {
    CHECK_THAT(header_error(safetensors_image(R"({"a":{)" + f32x2 + R"(,"data_offsets":[8,0]}})", std::string(8, '\0'))),
               Catch::Contains("end 0 < begin 8"));
  }
  SECTION("offsets near 2^64") {
    CHECK_THAT(header_error(safetensors_image(
                   R"({"a":{)" + f32x2 + R"(,"data_offsets":[18446744073709551608,18446744073709551615]}})", "")),
               Catch::Contains("outside the data area"));
  }
  SECTION("three offsets") {
    CHECK_THAT(header_error(safetensors_image(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8,16]}})", std::string(8, '\0'))),
               Catch::Contains("data_offsets"));
  }
  SECTION("dimension above int64") {
    CHECK_THAT(header_error(safetensors_image(R"({"a":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}})")),
               Catch::Contains("too large"));
  }
  SECTION("fractional dimension") {
    CHECK_THAT(header_error(safetensors_image(R"({"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,0]}})")),
               Catch::Contains("shape entries must be integers"));
  }
  SECTION("shape x dtype overflowing 64 bits only through the element size") {
    // 2^62 elements fit in 64 bits; times 8 bytes they do not.
    CHECK_THAT(header_error(safetensors_image(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})",
                                              std::string(8, '\0'))),
               Catch::Contains("does not match shape x dtype size"));
  }
  SECTION("dtype that is not a string") {
    CHECK_THAT(header_error(safetensors_image(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "abcd")),
               Catch::Contains("missing string field 'dtype'"));
  }
  SECTION("metadata that is not a table of strings") {
    CHECK_THAT(header_error(safetensors_image(R"({"__metadata__":{"k":1}})")), Catch::Contains("__metadata__ key 'k'"));
    CHECK_THAT(header_error(safetensors_image(R"({"__metadata__":[1]})")), Catch::Contains("__metadata__ must be"));
  }
  SECTION("a zero-size tensor inside another tensor's bytes is not an overlap") {
    const std::string bytes = safetensors_image(
        R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
        std::string(8, '\0'));
    const auto header = sapling::parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "ok");
    CHECK(header.tensors.size() == 2);
  }
}

TEST_CASE("hostile safetensors files and sharded indexes name the file", "[hostile][safetensors]") {
  const auto dir = sapling::test::temp_dir("hostile-st");
  SECTION("empty file") {
    write_bytes(dir / "empty.safetensors", "");
    CHECK_THAT(error_of([&] { sapling::SafetensorsFile f(dir / "empty.safetensors"); }),
               Catch::Contains("empty.safetensors") && Catch::Contains("0 bytes"));
  }
  SECTION("a folder where a file is expected") {
    fs::create_directories(dir / "folder.safetensors");
    CHECK_THAT(error_of([&] { sapling::SafetensorsFile f(dir / "folder.safetensors"); }),
               Catch::Contains("folder.safetensors") && Catch::Contains("not a regular file"));
  }
  SECTION("checkpoint folder with neither file") {
    CHECK_THAT(error_of([&] { sapling::TensorStore s(dir); }), Catch::Contains("neither model.safetensors"));
  }
  SECTION("index that is not JSON") {
    write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\": ");
    CHECK_THAT(error_of([&] { sapling::TensorStore s(dir); }),
               Catch::Contains("model.safetensors.index.json: invalid JSON"));
  }
  SECTION("index without weight_map") {
    write_bytes(dir / "model.safetensors.index.json", R"({"metadata": {}})");
    CHECK_THAT(error_of([&] { sapling::TensorStore s(dir); }), Catch::Contains("'weight_map'"));
  }
  SECTION("shard outside the folder") {
    write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "../../etc/passwd"}})");
    CHECK_THAT(error_of([&] { sapling::TensorStore s(dir); }), Catch::Contains("must be a plain file name"));
  }
  SECTION("shard that does not hold the tensor the index names") {
    sapling::save_safetensors(dir / "a.safetensors", {{"y", torch::zeros({2})}});
    write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "a.safetensors"}})");
    CHECK_THAT(error_of([&] { sapling::TensorStore s(dir); }),
               Catch::Contains("tensor 'x' is mapped to shard 'a.safetensors' which does not hold it"));
  }
  SECTION("corrupt shard: the error names the shard file") {
    write_bytes(dir / "b.safetensors", safetensors_image("{\"x\": nope}"));
    write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "b.safetensors"}})");
    CHECK_THAT(error_of([&] { sapling::TensorStore s(dir); }), Catch::Contains("b.safetensors: invalid JSON"));
  }
  fs::remove_all(dir);
}

// ------------------------------------------------------------------ structures

TEST_CASE("a chain without any CA is read as unobserved, and prepare drops it", "[hostile][structure_io]") {
  std::string pdb;
  int serial = 1;
  for (int i = 0; i < 3; ++i) {
    char x[16];
    std::snprintf(x, sizeof(x), "%8.3f", 10.0 + i);
    pdb += atom_line(serial++, "N", "ALA", 'A', std::to_string(i + 1), x);
    pdb += atom_line(serial++, "C", "ALA", 'A', std::to_string(i + 1), x);
  }
  sapling::StructureReadReport report;
  const auto chains = sapling::read_structure_from_memory(pdb, "noca.pdb", {}, &report);
  REQUIRE(chains.size() == 1);
  CHECK(chains[0].sequence == "AAA");
  CHECK(chains[0].observed.sum().item<int64_t>() == 0);
  CHECK(report.residues_without_ca == 3);
}

TEST_CASE("NaN and 1e30 coordinates never become observed positions", "[hostile][structure_io]") {
  SECTION("PDB with nan in the x column") {
    int serial = 1;
    std::string pdb = residue(serial, "ALA", "1", 10.0);
    pdb += atom_line(serial++, "N", "GLY", 'A', "2", "  13.000");
    pdb += atom_line(serial++, "CA", "GLY", 'A', "2", "     nan");
    pdb += atom_line(serial++, "C", "GLY", 'A', "2", "  15.000");
    pdb += residue(serial, "LYS", "3", 16.0);
    sapling::StructureReadReport report;
    std::vector<sapling::ChainStructure> chains;
    try {
      chains = sapling::read_structure_from_memory(pdb, "nan.pdb", {}, &report);
    } catch (const sapling::Error& e) {
      // Refusing the file is acceptable too, as long as the error names it.
      CHECK_THAT(e.what(), Catch::Contains("nan.pdb"));
      return;
    }
    REQUIRE(chains.size() == 1);
    check_observed_finite(chains[0]);
    CHECK(chains[0].sequence == "AGK");
    CHECK_FALSE(chains[0].observed[1].item<bool>());
    WARN("nan.pdb: atoms with bad coordinates " << report.atoms_with_bad_coordinates);
  }
  SECTION("mmCIF with 1e30, nan and inf") {
    const std::string cif = R"(data_X
loop_
_atom_site.group_PDB
_atom_site.id
_atom_site.type_symbol
_atom_site.label_atom_id
_atom_site.label_alt_id
_atom_site.label_comp_id
_atom_site.label_asym_id
_atom_site.label_seq_id
_atom_site.Cartn_x
_atom_site.Cartn_y
_atom_site.Cartn_z
_atom_site.occupancy
_atom_site.B_iso_or_equiv
_atom_site.auth_seq_id
_atom_site.auth_asym_id
ATOM 1 N N . ALA A 1 1.0 2.0 3.0 1.0 10.0 1 A
ATOM 2 C CA . ALA A 1 2.0 2.0 3.0 1.0 10.0 1 A
ATOM 3 C C . ALA A 1 3.0 2.0 3.0 1.0 10.0 1 A
ATOM 4 N N . GLY A 2 4.0 2.0 3.0 1.0 10.0 2 A
ATOM 5 C CA . GLY A 2 1e30 2.0 3.0 1.0 10.0 2 A
ATOM 6 C C . GLY A 2 6.0 2.0 3.0 1.0 10.0 2 A
ATOM 7 N N . LYS A 3 7.0 2.0 3.0 1.0 10.0 3 A
ATOM 8 C CA . LYS A 3 8.0 nan 3.0 1.0 10.0 3 A
ATOM 9 C C . LYS A 3 9.0 2.0 inf 1.0 10.0 3 A
ATOM 10 N N . SER A 4 10.0 2.0 3.0 1.0 10.0 4 A
ATOM 11 C CA . SER A 4 11.0 2.0 3.0 1.0 10.0 4 A
ATOM 12 C C . SER A 4 12.0 2.0 -1e30 1.0 10.0 4 A
)";
    sapling::StructureReadReport report;
    const auto chains = sapling::read_structure_from_memory(cif, "huge.cif", {}, &report);
    REQUIRE(chains.size() == 1);
    const auto& c = chains[0];
    check_observed_finite(c);
    CHECK(c.sequence == "AGKS");
    CHECK(c.observed[0].item<bool>());
    CHECK_FALSE(c.observed[1].item<bool>());  // CA at 1e30
    CHECK_FALSE(c.observed[2].item<bool>());  // CA with nan y
    CHECK(c.observed[3].item<bool>());
    CHECK(std::isnan(c.coords[3][sapling::kC][2].item<float>()));  // C at -1e30 dropped, CA kept
    CHECK(report.atoms_with_bad_coordinates == 4);
  }
}

TEST_CASE("insertion codes and duplicate residue numbers are distinct residues", "[hostile][structure_io]") {
  int serial = 1;
  std::string pdb = residue(serial, "ALA", "52", 0.0);
  pdb += residue(serial, "GLY", "52A", 4.0);
  pdb += residue(serial, "SER", "52B", 8.0);
  pdb += residue(serial, "LYS", "53", 12.0);
  pdb += residue(serial, "TRP", "10", 16.0);  // numbering restarts
  pdb += residue(serial, "ALA", "11", 20.0);
  pdb += residue(serial, "LEU", "10", 24.0);  // duplicate of residue 10, not adjacent
  const auto chains = sapling::read_structure_from_memory(pdb, "icode.pdb");
  REQUIRE(chains.size() == 1);
  CHECK(chains[0].sequence == "AGSKWAL");
  CHECK(chains[0].observed.all().item<bool>());
  CHECK(chains[0].coords[6][sapling::kCA][0].item<float>() == Approx(25.0f));
  check_observed_finite(chains[0]);
}

TEST_CASE("mmCIF files missing mandatory columns are refused naming the file", "[hostile][structure_io]") {
  const std::string head = "data_X\nloop_\n_atom_site.group_PDB\n_atom_site.id\n_atom_site.type_symbol\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no_z.cif", head + "_atom_site.label_atom_id\n_atom_site.label_comp_id\n_atom_site.label_asym_id\n"
                          "_atom_site.Cartn_x\n_atom_site.Cartn_y\nATOM 1 C CA ALA A 1.0 2.0\n"},
      {"no_name.cif", head + "_atom_site.label_comp_id\n_atom_site.label_asym_id\n_atom_site.Cartn_x\n"
                             "_atom_site.Cartn_y\n_atom_site.Cartn_z\nATOM 1 C ALA A 1.0 2.0 3.0\n"},
      {"no_residue.cif", head + "_atom_site.label_atom_id\n_atom_site.label_asym_id\n_atom_site.Cartn_x\n"
                                "_atom_site.Cartn_y\n_atom_site.Cartn_z\nATOM 1 C CA A 1.0 2.0 3.0\n"},
      {"short_row.cif", head + "_atom_site.label_atom_id\n_atom_site.label_comp_id\n_atom_site.label_asym_id\n"
                               "_atom_site.Cartn_x\n_atom_site.Cartn_y\n_atom_site.Cartn_z\nATOM 1 C CA ALA A 1.0\n"},
      {"no_atom_site.cif", "data_X\n_cell.length_a 10.0\n"},
  };
  for (const auto& entry : cases) {
    // Not a structured binding: clang 14 (the sanitizer build) cannot capture one in a lambda.
    const std::string& name = entry.first;
    INFO(name);
    const auto message = error_of([&] { sapling::read_structure_from_memory(entry.second, name); });
    std::cout << "  " << message << "\n";
    CHECK_THAT(message, Catch::Contains(name));
  }
  // gemmi alone would read no atoms and say nothing; the reader names the missing columns.
  CHECK_THAT(error_of([&] { sapling::read_structure_from_memory(cases[0].second, "no_z.cif"); }),
             Catch::Contains("no_z.cif: mmCIF atom table lacks mandatory column(s)") &&
                 Catch::Contains("_atom_site.Cartn_z"));
}

TEST_CASE("NMR ensembles: models with different chains, MODEL without ENDMDL", "[hostile][structure_io]") {
  int serial = 1;
  std::string nmr = "MODEL        1\n" + residue(serial, "ALA", "1", 0.0) + residue(serial, "GLY", "2", 4.0) + "ENDMDL\n";
  nmr += "MODEL        2\n" + residue(serial, "ALA", "1", 1.0) + residue(serial, "GLY", "2", 5.0, 'B') + "ENDMDL\n";
  nmr += "MODEL        3\n" + residue(serial, "ALA", "1", 2.0) + "END\n";  // no ENDMDL
  const auto first = sapling::read_structure_from_memory(nmr, "nmr.pdb");
  REQUIRE(first.size() == 1);
  CHECK(first[0].sequence == "AG");
  sapling::StructureReadOptions all;
  all.keep_all_models = true;
  const auto every = sapling::read_structure_from_memory(nmr, "nmr.pdb", all);
  std::string names;
  for (const auto& c : every) names += c.entry + ":" + c.chain + ":" + c.sequence + " ";
  INFO(names);
  CHECK(every.size() == 4);  // model 1: A; model 2: A and B; model 3: A
  for (const auto& c : every) check_observed_finite(c);
}

TEST_CASE("a 100 MB single-line file is refused quickly, naming it", "[hostile][structure_io]") {
  const auto dir = sapling::test::temp_dir("bigline");
  const auto file = dir / "oneline.pdb";
  {
    std::ofstream out(file, std::ios::binary);
    out << kAtom;
    const std::string chunk(1 << 20, 'A');
    for (int i = 0; i < 100; ++i) out << chunk;
    out << "\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::string message = error_of([&] { sapling::read_structure(file); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "100 MB single-line PDB refused in " << seconds << " s: " << message << "\n";
  CHECK_THAT(message, Catch::Contains("oneline.pdb"));
  CHECK(seconds < 60);
  fs::remove_all(dir);
}

TEST_CASE("sapling prepare on a folder of hostile files: each reported and skipped, or fatal with --strict",
          "[hostile][structure_io][cli]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = sapling::test::temp_dir("hostile-prepare");
  const auto in = dir / "in";
  fs::create_directories(in);
  fs::copy_file(sapling::test::data_path("psicov") / "1aap.pdb.gz", in / "1aap.pdb.gz");
  const std::string gz = sapling::read_file(sapling::test::data_path("psicov") / "1aap.pdb.gz");
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919u + 13u) % 256u);
  write_bytes(in / "a_empty.pdb", "");
  write_bytes(in / "b_truncated.pdb.gz", gz.substr(0, gz.size() / 3));
  write_bytes(in / "c_garbage.cif", garbage);
  write_bytes(in / "d_hetatm.pdb", "HETATM    1  C1  LIG A 201      10.000  10.000  10.000  1.00 10.00           C\n");
  write_bytes(in / "e_nocoords.cif", "data_X\nloop_\n_atom_site.id\n_atom_site.label_atom_id\n1 CA\n");
  write_bytes(in / "f_fake.pdb.gz", std::string("\x1f\x8b", 2) + garbage);  // gzip magic, then junk
  const std::vector<std::string> bad = {"a_empty.pdb", "b_truncated.pdb.gz", "c_garbage.cif", "d_hetatm.pdb",
                                        "e_nocoords.cif", "f_fake.pdb.gz"};

  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_command(sapling::test::sapling_exe() + " prepare " + quote(in) + " --out " + quote(dir / "ds") +
                             " --threads 2");
  std::cout << "prepare over " << bad.size() << " hostile files + 1 good: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const auto& name : bad) CHECK_THAT(r.output, Catch::Contains("skipped " + (in / name).string() + ": "));
  CHECK_THAT(r.output, Catch::Contains("7 files: 1 read, 6 skipped"));

  const auto strict = run_command(sapling::test::sapling_exe() + " prepare " + quote(in) + " --out " +
                                  quote(dir / "strict") + " --strict --threads 2");
  check_clean_cli_failure(strict);
  CHECK_THAT(strict.output, Catch::Contains("error: " + (in / "a_empty.pdb").string() + ": empty file"));
  CHECK_FALSE(fs::exists(dir / "strict" / "index.json"));
  fs::remove_all(dir);
}

// ------------------------------------------------------------------ FASTA

TEST_CASE("FASTA: hostile characters are named exactly", "[hostile][fasta]") {
  CHECK_THAT(error_of([] { sapling::parse_fasta(std::string(">a\nMK\x01L\n", 9), "x.fasta"); }),
             Catch::Contains("x.fasta:2:3: invalid character '\\x01'"));
  CHECK_THAT(error_of([] { sapling::parse_fasta(std::string(">a\nMK\0L\n", 8), "x.fasta"); }),
             Catch::Contains("x.fasta:2:3: invalid character '\\x00'"));
  CHECK_THAT(error_of([] { sapling::parse_fasta(">a\r\nMK@L\r\n", "x.fasta"); }),
             Catch::Contains("x.fasta:2:3: invalid character '@'"));
  CHECK_THAT(error_of([] { sapling::parse_fasta(">a\nMKL\n>b\r\n\r\n", "x.fasta"); }),
             Catch::Contains("x.fasta:3: record 'b' has an empty sequence"));
  // A 100k-residue record reads whole; length limits belong to the consumer (embed's --long policy).
  const auto records = sapling::parse_fasta(">long\n" + std::string(100000, 'A') + "\n", "x.fasta");
  REQUIRE(records.size() == 1);
  CHECK(records[0].sequence.size() == 100000);
}

TEST_CASE("FASTA lenient mode skips and reports bad records, strict stays the default", "[hostile][fasta]") {
  const std::string text =
      "orphan line\n"      // 1: before the first header
      ">good1 first\r\n"   // 2
      "MKT\r\n"            // 3
      ">\n"                // 4: empty header
      "MSVG\n"             // 5
      ">good1\n"           // 6: duplicate label
      "AAAA\n"             // 7
      ">digits\n"          // 8
      "MK1L\n"             // 9: invalid character
      "LLLL\n"             // 10
      ">empty\n"           // 11: empty sequence
      ">good2\n"           // 12
      "AC<mask>D*\n";      // 13
  sapling::FastaOptions lenient;
  lenient.skip_bad_records = true;
  sapling::FastaReport report;
  const auto records = sapling::parse_fasta(text, "mixed.fasta", lenient, &report);
  REQUIRE(records.size() == 2);
  CHECK(records[0].label == "good1");
  CHECK(records[0].sequence == "MKT");
  CHECK(records[1].label == "good2");
  CHECK(records[1].sequence == "AC<mask>D");
  REQUIRE(report.skipped.size() == 5);
  CHECK_THAT(report.skipped[0], Catch::Contains("mixed.fasta:1: sequence data before the first '>' header"));
  CHECK_THAT(report.skipped[1], Catch::Contains("mixed.fasta:4: empty FASTA header"));
  CHECK_THAT(report.skipped[2], Catch::Contains("mixed.fasta:6: duplicate label 'good1' (first seen on line 2)"));
  CHECK_THAT(report.skipped[3], Catch::Contains("mixed.fasta:9:3: invalid character '1'"));
  CHECK_THAT(report.skipped[4], Catch::Contains("mixed.fasta:11: record 'empty' has an empty sequence"));
  // A label whose record was dropped can be used again later.
  const auto again = sapling::parse_fasta(">x\nMK1\n>x\nMKV\n", "x.fasta", lenient);
  REQUIRE(again.size() == 1);
  CHECK(again[0].sequence == "MKV");
  // Strict (default) stops at the first problem.
  CHECK_THAT(error_of([&] { sapling::parse_fasta(text, "mixed.fasta"); }),
             Catch::Contains("mixed.fasta:1: sequence data before the first '>' header"));
}

TEST_CASE("the real UniProt GO file: strict names line 48549, lenient skips its empty headers", "[hostile][fasta]") {
  SAPLING_REQUIRE_DATA("uniprot_go160k");
  const auto file = sapling::test::data_path("uniprot_go160k") / "uniprot_go160k.fasta.gz";
  CHECK_THAT(error_of([&] { sapling::read_fasta(file); }),
             Catch::Contains("uniprot_go160k.fasta.gz:48549: empty FASTA header"));
  sapling::FastaOptions lenient;
  lenient.skip_bad_records = true;
  sapling::FastaReport report;
  const auto records = sapling::read_fasta(file, lenient, &report);
  std::cout << "uniprot_go160k: " << records.size() << " records read, " << report.skipped.size() << " skipped\n";
  for (const auto& s : report.skipped) std::cout << "  skipped " << s << "\n";
  REQUIRE_FALSE(report.skipped.empty());
  CHECK_THAT(report.skipped[0], Catch::Contains("uniprot_go160k.fasta.gz:48549: empty FASTA header"));
  CHECK(records.size() + report.skipped.size() == 160000);  // 160,000 headers in the file
  for (const auto& r : records) REQUIRE_FALSE(r.sequence.empty());
}

// ------------------------------------------------------------------ recipes

TEST_CASE("recipe check through the CLI: hostile recipes fail with file, line and key", "[hostile][recipe][cli]") {
  const auto dir = sapling::test::temp_dir("hostile-recipe");
  auto check = [&](const std::string& name, const std::string& text) {
    write_bytes(dir / name, text);
    return run_command(sapling::test::sapling_exe() + " recipe check " + quote(dir / name));
  };
  const std::string selector = "[selector]\ncomponent = \"own_loss\"\n";
  struct Case {
    std::string name, text, expected;
  };
  const std::vector<Case> cases = {
      {"ratio_high.toml", selector + "ratio = 1.5\n", "ratio_high.toml:3: [selector] key 'ratio': value 1.5 is out of range (expected <= 1)"},
      {"ratio_zero.toml", selector + "ratio = 0.0\n", "ratio_zero.toml:3: [selector] key 'ratio': value 0 is out of range (expected > 0)"},
      {"ratio_negative.toml", selector + "ratio = -0.5\n", "key 'ratio': value -0.5 is out of range"},
      {"ratio_nan.toml", selector + "ratio = nan\n", "ratio_nan.toml:3: [selector] key 'ratio': NaN is not allowed"},
      {"ratio_inf.toml", selector + "ratio = inf\n", "ratio_inf.toml:3: [selector] key 'ratio': infinity is not allowed"},
      {"ratio_type.toml", selector + "ratio = \"half\"\n", "ratio_type.toml:3: [selector] key 'ratio': wrong type, expected a number"},
      {"ratio_list.toml", selector + "ratio = [0.5]\n", "key 'ratio': wrong type"},
      {"unknown_key.toml", selector + "ration = 0.5\n", "unknown_key.toml:3: [selector] key 'ration': unknown key (did you mean 'ratio'?)"},
      {"component_type.toml", "[selector]\ncomponent = 3\n", "component_type.toml:2: [selector] key 'component': expected a string"},
      {"section_type.toml", "selector = 3\n", "section_type.toml:1: 'selector' must be a table"},
      {"self_base.toml", "base = \"self_base.toml\"\n", "recipe inheritance cycle"},
      {"dir_base.toml", "base = \".\"\n", "dir_base.toml: base recipe"},
      {"missing_plugins.toml", "[plugins]\npaths = [\"no_such_plugin_folder\"]\n",
       "missing_plugins.toml:2: [plugins] key 'paths': folder '" + (dir / "no_such_plugin_folder").string() + "' does not exist"},
      {"garbage.toml", std::string("\x7f" "ELF\x02\x01\x01\0\0\0", 10), "garbage.toml:1"},
      {"nested.toml", "x = " + std::string(5000, '[') + std::string(5000, ']') + "\n", "nested.toml:1"},
      {"big_int.toml", "[selector]\ncomponent = \"own_loss\"\nratio = 99999999999999999999999\n", "big_int.toml:3"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const auto r = check(c.name, c.text);
    check_clean_cli_failure(r);
    CHECK_THAT(r.output, Catch::Contains(c.expected));
  }
  // A model folder that does not exist (yet) is a warning at check time, an error when it is built.
  const auto model = check("missing_model.toml", "[model]\ncomponent = \"esm2\"\npath = \"no/such/model\"\n");
  CHECK(model.exit_code == 0);
  CHECK_THAT(model.output, Catch::Contains("missing_model.toml:3: [model] key 'path': '" + (dir / "no/such/model").string() +
                                           "' does not exist (yet)"));
  // Said once, with the path as the user would type it from where they are (not `sub/../no/such/model`).
  std::filesystem::create_directories(dir / "sub");
  std::ofstream(dir / "sub/relative_model.toml") << "[model]\ncomponent = \"esm2\"\npath = \"../no/such/model\"\n";
  const auto relative = run_command("cd " + quote(dir) + " && " + sapling::test::sapling_exe() + " recipe check sub/relative_model.toml");
  CHECK(relative.exit_code == 0);
  CHECK_THAT(relative.output, Catch::Contains("'no/such/model' does not exist (yet)"));
  CHECK(relative.output.find("does not exist") == relative.output.rfind("does not exist"));
  // A hub id that is not in the local Hugging Face cache: the warning says how to get it.
  const auto hub = check("hub_model.toml", "[model]\ncomponent = \"esm2\"\npath = \"facebook/esm2_t0_missing\"\n");
  CHECK(hub.exit_code == 0);
  CHECK_THAT(hub.output, Catch::Contains("hub_model.toml:3: [model] key 'path': 'facebook/esm2_t0_missing' is not a "
                                         "folder, nor a model in the Hugging Face cache") &&
                             Catch::Contains("`hf download facebook/esm2_t0_missing`"));
  const auto use = run_command(sapling::test::sapling_exe() + " train " + quote(dir / "missing_model.toml"));
  check_clean_cli_failure(use);
  CHECK_THAT(use.output, Catch::Contains("missing_model.toml:3"));
  const auto missing = run_command(sapling::test::sapling_exe() + " recipe check " + quote(dir / "absent.toml"));
  check_clean_cli_failure(missing);
  CHECK_THAT(missing.output, Catch::Contains("absent.toml: no such recipe file or folder"));
  fs::remove_all(dir);
}

// ------------------------------------------------------------------ plugins

TEST_CASE("garbage and empty .so files in a plugin folder are reported, not fatal", "[hostile][plugins][cli]") {
  const auto dir = sapling::test::temp_dir("hostile-plugins");
  write_bytes(dir / "sapling_garbage.so", std::string(4096, '\x7f'));
  write_bytes(dir / "sapling_empty.so", "");
  write_bytes(dir / "sapling_fake_elf.so", std::string("\x7f" "ELF\x02\x01\x01", 7) + std::string(100, '\0'));
  const auto r = run_command("SAPLING_PLUGIN_PATH=" + quote(dir) + " " + sapling::test::sapling_exe() + " plugins list");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const char* name : {"sapling_garbage.so", "sapling_empty.so", "sapling_fake_elf.so"})
    CHECK_THAT(r.output, Catch::Contains(name));
  CHECK_THAT(r.output, Catch::Contains("cannot load library"));
  fs::remove_all(dir);
}
