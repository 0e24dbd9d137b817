// Process-wide heap settings for tensor workloads; every sapling executable calls this first.
#pragma once

namespace sapling {

/// Keeps large blocks on the glibc heap instead of one mmap/munmap per allocation. LibTorch 1.13's CPU
/// attention allocates tens of MB per layer and call (8 x 20 heads x 256^2 floats = 42 MB for the 8M
/// model at 8 x 256 tokens); with glibc's defaults each is a fresh mapping whose pages fault in and are
/// unmapped again, several times per layer in forward and backward. Measured on the MLM train step
/// (perf/cpu_vs_torch.sh, 1 thread): 576 -> 841 residues/s. The price: freed memory is not returned to
/// the OS before exit (peak RSS stays), which suits one-job processes.
void tune_allocator_for_tensors();

}  // namespace sapling
