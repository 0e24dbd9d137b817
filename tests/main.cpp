// Catch2 entry point for the sapling test suites: the heap is set up as in every sapling executable.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "sapling/internal/allocator.hpp"

int main(int argc, char* argv[]) {
  // Without it each large attention or matrix buffer is a fresh mmap whose pages fault in again: the
  // in-process evaluation tests spent 40% of their time in the kernel (the GB1 fitness test: 139 s -> 32 s).
  sapling::tune_allocator_for_tensors();
  return Catch::Session().run(argc, argv);
}
