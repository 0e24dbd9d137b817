// libFuzzer target: the PDB/mmCIF reader (gzip included); only sapling::Error may escape, and chains read are consistent.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "sapling/error.hpp"
#include "sapling/structure_io.hpp"

namespace {

void check(const std::vector<sapling::ChainStructure>& chains) {
  for (const auto& c : chains) {
    const int64_t L = c.length();
    if (L <= 0 || static_cast<int64_t>(c.sequence.size()) != L) std::abort();
    if (c.coords.size(0) != L || c.observed.size(0) != L || c.bfactor.size(0) != L) std::abort();
    // Observed residues have finite CA coordinates; unobserved ones have none.
    const auto ca_finite = torch::isfinite(c.coords.select(1, sapling::kCA)).all(1);
    if (!torch::equal(ca_finite, c.observed)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string contents(reinterpret_cast<const char*>(data), size);
  sapling::StructureReadOptions options;
  options.keep_all_models = size % 2 == 1;  // both paths, chosen by the input
  try {
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
      // Compressed input goes through the file reader (zlib path).
      static const std::string path = "/tmp/sapling-fuzz-structure-" + std::to_string(::getpid()) + ".pdb.gz";
      std::ofstream(path, std::ios::binary) << contents;
      check(sapling::read_structure(path, options));
    } else {
      check(sapling::read_structure_from_memory(std::move(contents), "fuzz.pdb", options));
    }
  } catch (const sapling::Error&) {
  }
  return 0;
}
