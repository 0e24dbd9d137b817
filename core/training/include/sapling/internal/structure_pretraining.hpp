// `sapling pretrain-pgnn` as a library function: self-supervised pretraining of a structure encoder.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "sapling/export.hpp"
#include "sapling/options.hpp"

namespace sapling {

struct StructurePretrainingSettings {
  std::filesystem::path dataset;  // a prepared structure dataset
  std::string split = "train";    // train, valid, all
  std::filesystem::path out;      // encoder weights (.safetensors), rewritten atomically at each checkpoint
  std::filesystem::path metrics;  // JSON lines, one {step, loss, seconds} per step ("" = none)
  std::filesystem::path tensorboard;   // event files (train/loss per step; "" = none)
  std::filesystem::path init_weights;  // start from these encoder weights ("" = random initialisation)
  std::string pgnn, objective;          // registered names (resolve defaults before calling)
  Options pgnn_options, objective_options;  // validated against their schemas
  int64_t steps = 1000;
  int64_t batch_size = 8;  // chains per step (the contrastive negatives)
  double lr = 1e-3;        // Adam
  uint64_t seed = 0;       // initialisation, chain order, crops and masks
  torch::Device device = torch::kCPU;
  int64_t checkpoint_every = 100;
  double time_limit = 0;  // > 0: stop after the step that passes this many seconds (weights written)
};

struct StructurePretrainingSummary {
  int64_t steps = 0;         // steps done
  bool interrupted = false;  // Ctrl-C (weights written)
};

// Trains settings.pgnn with settings.objective (Adam) on batches of the split's chains with 2 or more observed
// residues; fails naming the flag or key when a value is out of range. Plugins must be loaded first.
SAPLING_API StructurePretrainingSummary pretrain_structure_encoder(const StructurePretrainingSettings& settings);

}  // namespace sapling
