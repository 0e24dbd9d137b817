// glibc heap settings for tensor workloads (see allocator.hpp for the measurement).
#include "sapling/internal/allocator.hpp"

#include <malloc.h>

namespace sapling {

void tune_allocator_for_tensors() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // blocks up to 1 GiB come from the heap, reused across calls
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and the heap is not trimmed back after each large free
}

}  // namespace sapling
