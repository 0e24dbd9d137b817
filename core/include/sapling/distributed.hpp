// Data parallelism over processes with LibTorch's c10d (Gloo), configured like torchrun from the environment.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "sapling/export.hpp"

namespace sapling {

// torchrun / SLURM-style launch settings.
struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (all optional
// when WORLD_SIZE is unset or 1). Fails naming the variable that is missing
// or malformed, e.g. RANK outside 0..WORLD_SIZE-1.
SAPLING_API LaunchEnvironment launch_environment();

// The process group of a run; with one process every collective is a no-op.
class SAPLING_API DataParallel {
 public:
  // Connects to the peers (rank 0 hosts the TCP store). Collectives that wait
  // longer than `timeout_seconds` for a peer (a dead or hung worker) fail with
  // an error instead of blocking forever.
  DataParallel(const LaunchEnvironment& environment, double timeout_seconds);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }

  // Averages the tensors over processes, in place. They are flattened into
  // one float32 buffer per call (one collective, not one per parameter).
  void average(const std::vector<torch::Tensor>& tensors);
  // Sums in place.
  void sum(const std::vector<torch::Tensor>& tensors);
  // Copies rank 0's values into every process's tensors, in place.
  void broadcast_from_main(const std::vector<torch::Tensor>& tensors);
  void barrier();

 private:
  void all_reduce(const std::vector<torch::Tensor>& tensors, bool average);
  struct Group;
  std::unique_ptr<Group> group_;
  int rank_ = 0, world_size_ = 1;
};

}  // namespace sapling
