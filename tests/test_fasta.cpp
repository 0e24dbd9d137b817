// FASTA reader: labels, CRLF, multi-line records, and line-numbered errors for bad input.
#include <catch2/catch.hpp>

#include "sapling/error.hpp"
#include "sapling/fasta.hpp"
#include "test_support.hpp"

TEST_CASE("FASTA records parse with labels, CRLF and wrapped lines", "[fasta]") {
  auto records = sapling::parse_fasta(">sp|P1 first protein\r\nMKT\r\nayi\r\n\r\n>p2\nAC<mask>D*\n", "x.fasta");
  REQUIRE(records.size() == 2);
  CHECK(records[0].label == "sp|P1");
  CHECK(records[0].description == "sp|P1 first protein");
  CHECK(records[0].sequence == "MKTAYI");
  CHECK(records[1].sequence == "AC<mask>D");
  CHECK(records[1].line == 5);
}

TEST_CASE("bad FASTA input names the file and line", "[fasta][hostile]") {
  CHECK_THROWS_WITH(sapling::parse_fasta(">a\nMK\n>a\nMK\n", "x.fasta"),
                    Catch::Contains("x.fasta:3: duplicate label 'a' (first seen on line 1)"));
  CHECK_THROWS_WITH(sapling::parse_fasta(">a\n>b\nMK\n", "x.fasta"), Catch::Contains("x.fasta:1: record 'a' has an empty sequence"));
  CHECK_THROWS_WITH(sapling::parse_fasta("MK\n>a\nMK\n", "x.fasta"), Catch::Contains("x.fasta:1: sequence data before"));
  CHECK_THROWS_WITH(sapling::parse_fasta(">a\nMK1L\n", "x.fasta"), Catch::Contains("x.fasta:2:3: invalid character '1'"));
  CHECK_THROWS_WITH(sapling::parse_fasta(">\nMK\n", "x.fasta"), Catch::Contains("x.fasta:1: empty FASTA header"));
  CHECK_THROWS_WITH(sapling::read_fasta("/nonexistent.fasta"), Catch::Contains("/nonexistent.fasta: cannot open"));
}

TEST_CASE("the real benchmark FASTA files read completely", "[fasta]") {
  SAPLING_REQUIRE_DATA("embed_bench");
  auto records = sapling::read_fasta(sapling::test::data_path("embed_bench") / "embed_100.fasta");
  CHECK(records.size() == 100);
  size_t residues = 0;
  for (const auto& r : records) residues += r.sequence.size();
  CHECK(residues == 40817);  // BENCHMARKS.md
}
