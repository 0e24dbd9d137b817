// Data parallelism over processes with LibTorch's c10d (Gloo on the CPU, NCCL on CUDA), configured like torchrun.
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
// when WORLD_SIZE is unset or 1; LOCAL_RANK defaults to RANK). Fails naming the
// variable that is missing or malformed, e.g. RANK outside 0..WORLD_SIZE-1.
SAPLING_API LaunchEnvironment launch_environment();

// The c10d backend of a run: Gloo reduces CPU buffers, NCCL reduces on the GPU (one process per GPU).
enum class CollectiveBackend { Gloo, Nccl };

// `[train] backend`: "auto" is NCCL when the run's device is CUDA and Gloo otherwise; "nccl" needs a CUDA device
// and a build with NCCL. `setting` names the key in errors.
SAPLING_API CollectiveBackend resolve_backend(const std::string& name, const torch::Device& device,
                                              const std::string& setting);
SAPLING_API const char* backend_name(CollectiveBackend backend);

// The device of this process for a device choice ("auto", "cpu", "cuda", "cuda:N"): with CUDA and no index,
// cuda:LOCAL_RANK, so that each process of a node takes its own GPU (torchrun's convention). Fails naming
// `setting` when CUDA is asked for and absent, or LOCAL_RANK has no GPU.
SAPLING_API torch::Device process_device(const std::string& name, const LaunchEnvironment& environment,
                                         const std::string& setting);

// The process group of a run; with one process every collective is a no-op.
class SAPLING_API DataParallel {
 public:
  // Connects to the peers (rank 0 hosts the TCP store). Collectives that wait
  // longer than `timeout_seconds` for a peer (a dead or hung worker) fail with
  // an error instead of blocking forever.
  // With NCCL the process's CUDA device must be `device` (process_device()).
  DataParallel(const LaunchEnvironment& environment, double timeout_seconds,
               CollectiveBackend backend = CollectiveBackend::Gloo, torch::Device device = torch::kCPU);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }
  CollectiveBackend backend() const { return backend_; }

  // Averages the tensors over processes, in place. They are flattened into
  // one float32 buffer per call (one collective, not one per parameter), on
  // the CPU for Gloo and on the process's GPU for NCCL.
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
  CollectiveBackend backend_ = CollectiveBackend::Gloo;
  torch::Device device_ = torch::kCPU;
};

}  // namespace sapling
