// libFuzzer target: the FASTA parser, strict and lenient; lenient output must hold only well-formed records.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sapling/error.hpp"
#include "sapling/fasta.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    sapling::parse_fasta(text, "fuzz.fasta");
  } catch (const sapling::Error&) {
  }
  sapling::FastaOptions lenient;
  lenient.skip_bad_records = true;
  sapling::FastaReport report;
  // Lenient mode never throws on content: every problem becomes a skipped record.
  const auto records = sapling::parse_fasta(text, "fuzz.fasta", lenient, &report);
  for (const auto& r : records)
    if (r.label.empty() || r.sequence.empty() || r.line == 0) std::abort();
  return 0;
}
