// libFuzzer target: the safetensors header parser on arbitrary file images; accepted headers must be self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sapling/error.hpp"
#include "sapling/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sapling::SafetensorsHeader header;
  try {
    header = sapling::parse_safetensors_header(data, size, "fuzz.safetensors");
  } catch (const sapling::Error&) {
    return 0;  // a clean rejection is the expected outcome for most inputs
  }
  // Accepted: every tensor lies inside the file and its byte count matches its shape.
  const uint64_t data_size = size - header.data_offset;
  if (header.data_offset < 8 || header.data_offset > size) std::abort();
  for (const auto& [name, e] : header.tensors) {
    if (e.begin > e.end || e.end > data_size) std::abort();
    uint64_t count = 1;
    for (int64_t d : e.shape) {
      if (d < 0) std::abort();
      count *= static_cast<uint64_t>(d);
    }
    if (count * sapling::dtype_size(e.dtype) != e.end - e.begin) std::abort();
  }
  return 0;
}
