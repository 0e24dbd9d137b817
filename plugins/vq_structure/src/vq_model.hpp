// The vq_structure VQ-VAE: feature normalisation, encoder MLP, EMA codebook, decoder MLP, losses and weights files.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "codebook.hpp"

namespace sapling::vq {

// The architecture: what a weights file records and what must match to load it.
struct VqArchitecture {
  int64_t codebook_size = 512;
  int64_t latent_dim = 32;
  int64_t hidden_dim = 128;
  int64_t neighbours = 3;
};

// Training settings (not part of the weights).
struct VqTraining {
  double beta = 0.25;         // commitment weight
  double decay = 0.99;        // codebook EMA decay
  int64_t restart_after = 10;  // batches in a row unused before a code is restarted
};

struct LossParts {
  torch::Tensor loss;  // reconstruction + beta * commitment (autograd graph)
  double reconstruction = 0, commitment = 0;
  int64_t restarted = 0;  // dead codes re-seeded after this batch (training only)
  torch::Tensor codes;   // [N] assigned codes
};

struct Quality {
  double reconstruction = 0;  // MSE of the normalised features
  double usage = 0;           // fraction of codes used at least once
  double perplexity = 0;      // exp(entropy of the code histogram)
  int64_t residues = 0;
};

struct VqModelImpl : torch::nn::Module {
  VqModelImpl(const VqArchitecture& architecture, const VqTraining& training, uint64_t seed);

  int64_t num_features() const { return feature_mean.size(0); }
  bool initialised() const { return ready.item<bool>(); }
  // First training batch (raw features [N, F]): per-feature mean and spread, and the codes set to
  // encoder outputs of it, so that training starts with every code near data.
  void initialise(const torch::Tensor& raw, at::Generator& generator);
  torch::Tensor normalise(const torch::Tensor& raw) const;
  // Loss of raw features [N, F]. In training mode (is_training()) it also takes an EMA step and restarts
  // dead codes with `generator`.
  LossParts loss(const torch::Tensor& raw, at::Generator& generator);
  // Codes of raw features [N, F] (no autograd).
  torch::Tensor codes(const torch::Tensor& raw);
  Quality quality(const torch::Tensor& raw);

  // Weights file: every parameter and buffer, plus the architecture in the metadata.
  void save(const std::filesystem::path& file) const;
  // Reads the architecture recorded in `file` (fails naming the file and key on a malformed one).
  static VqArchitecture read_architecture(const std::filesystem::path& file);
  void load(const std::filesystem::path& file);

  VqArchitecture architecture;
  VqTraining training;
  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  EmaCodebook codebook{nullptr};
  torch::Tensor feature_mean, feature_std, ready;
};
TORCH_MODULE(VqModel);

}  // namespace sapling::vq
