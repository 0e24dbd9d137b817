// The vq_structure codebook: nearest-code lookup, EMA updates with Laplace smoothing, dead-code restarts.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>

namespace sapling::vq {

// Codes are not trained by gradients: each training batch moves every used code towards the mean of the
// latents assigned to it (exponential moving averages of counts and sums, as in van den Oord et al. 2017,
// appendix). Each code starts with a pseudo-count of 1 at its initial position, so a code that goes unused
// keeps its place (sum and count decay together) instead of collapsing to the origin.
struct EmaCodebookImpl : torch::nn::Module {
  EmaCodebookImpl(int64_t size, int64_t dim, double decay, double epsilon = 1e-5);

  int64_t size() const { return embedding.size(0); }
  // Index of the nearest code (squared Euclidean distance; ties to the lower index) per row of z [N, D].
  torch::Tensor nearest(const torch::Tensor& z) const;
  // One EMA step from latents z [N, D] assigned to `codes` [N]; also counts, per code, the batches in a row
  // it went unused.
  void ema_update(const torch::Tensor& z, const torch::Tensor& codes);
  // Codes unused for `after` batches in a row get a latent of z drawn with `generator` (distinct rows while
  // z has enough), a pseudo-count of 1 and a fresh unused count. Returns how many were restarted.
  int64_t restart_dead(const torch::Tensor& z, int64_t after, at::Generator& generator);
  // Sets every code to a latent of z (a data-dependent start), drawn like restart_dead's.
  void reset_from(const torch::Tensor& z, at::Generator& generator);

  double decay, epsilon;
  torch::Tensor embedding;     // [K, D] the codes
  torch::Tensor cluster_size;  // [K] EMA of assignment counts
  torch::Tensor embed_sum;     // [K, D] EMA of assigned latent sums
  torch::Tensor unused;        // [K] int64: consecutive training batches without an assignment
};
TORCH_MODULE(EmaCodebook);

// Rows of z for `count` codes: a random permutation's first rows when z has that many, else a draw with
// replacement plus a little noise so that the copies can separate.
torch::Tensor draw_latents(const torch::Tensor& z, int64_t count, at::Generator& generator);

}  // namespace sapling::vq
