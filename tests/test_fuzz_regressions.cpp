// Inputs the fuzzers (fuzz/) once failed on, kept under fuzz/regressions/<target>/ and replayed with the same
// contract as the fuzz targets: a clean sapling::Error or a consistent result, nothing else.
#include <catch2/catch.hpp>

#include <algorithm>

#include "sapling/error.hpp"
#include "sapling/fasta.hpp"
#include "sapling/files.hpp"
#include "sapling/recipe.hpp"
#include "sapling/safetensors.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> regression_inputs(const std::string& target) {
  std::vector<fs::path> files;
  const auto dir = sapling::test::source_dir() / "fuzz" / "regressions" / target;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("fuzz regressions: structure reader", "[fuzz][structure_io]") {
  const auto files = regression_inputs("structure");
  CHECK_FALSE(files.empty());
  for (const auto& file : files) {
    INFO(file);
    try {
      for (bool all_models : {false, true}) {
        sapling::StructureReadOptions options;
        options.keep_all_models = all_models;
        for (const auto& c : sapling::read_structure_from_memory(sapling::read_file(file), file.filename().string(), options)) {
          const auto ca_finite = torch::isfinite(c.coords.select(1, sapling::kCA)).all(1);
          CHECK(torch::equal(ca_finite, c.observed));
        }
      }
    } catch (const sapling::Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(file.filename().string()));
    }
  }
}

TEST_CASE("fuzz regressions: safetensors, FASTA and recipe inputs", "[fuzz]") {
  for (const auto& file : regression_inputs("safetensors")) {
    INFO(file);
    const std::string bytes = sapling::read_file(file);
    try {
      sapling::parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "r");
    } catch (const sapling::Error&) {
    }
  }
  for (const auto& file : regression_inputs("fasta")) {
    INFO(file);
    sapling::FastaOptions lenient;
    lenient.skip_bad_records = true;
    for (const auto& r : sapling::parse_fasta(sapling::read_file(file), "r", lenient)) CHECK_FALSE(r.sequence.empty());
  }
  for (const auto& file : regression_inputs("recipe")) {
    INFO(file);
    try {
      sapling::Recipe::load(file).validate();
    } catch (const sapling::Error&) {
    }
  }
}
