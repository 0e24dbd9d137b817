// EMA vector-quantisation codebook: assignment, moving-average update, dead-code restarts.
#include "codebook.hpp"

namespace sapling::vq {

EmaCodebookImpl::EmaCodebookImpl(int64_t size, int64_t dim, double decay_, double epsilon_)
    : decay(decay_), epsilon(epsilon_) {
  embedding = register_buffer("embedding", torch::zeros({size, dim}));
  cluster_size = register_buffer("cluster_size", torch::ones({size}));
  embed_sum = register_buffer("embed_sum", embedding.clone());
  unused = register_buffer("unused", torch::zeros({size}, torch::kInt64));
}

torch::Tensor EmaCodebookImpl::nearest(const torch::Tensor& z) const {
  // |z|^2 is the same for every code, so the argmin needs only |e|^2 - 2 z.e.
  const torch::Tensor distance = embedding.pow(2).sum(1).unsqueeze(0) - 2.0 * torch::matmul(z, embedding.t());
  return distance.argmin(1);
}

void EmaCodebookImpl::ema_update(const torch::Tensor& z, const torch::Tensor& codes) {
  torch::NoGradGuard no_grad;
  const int64_t k = size();
  const torch::Tensor counts = torch::bincount(codes, {}, k).to(cluster_size.dtype());
  const torch::Tensor sums = torch::zeros_like(embed_sum).index_add_(0, codes, z.to(embed_sum.dtype()));
  cluster_size.mul_(decay).add_(counts, 1.0 - decay);
  embed_sum.mul_(decay).add_(sums, 1.0 - decay);
  // Laplace smoothing keeps a rarely used code's count away from zero before dividing.
  const torch::Tensor total = cluster_size.sum();
  const torch::Tensor smoothed = (cluster_size + epsilon) / (total + k * epsilon) * total;
  embedding.copy_(embed_sum / smoothed.unsqueeze(1));
  unused.copy_(torch::where(counts.gt(0), torch::zeros_like(unused), unused + 1));
}

torch::Tensor draw_latents(const torch::Tensor& z, int64_t count, at::Generator& generator) {
  const int64_t rows = z.size(0);
  if (rows >= count) return z.index_select(0, torch::randperm(rows, generator, torch::kInt64).slice(0, 0, count));
  const torch::Tensor picked = z.index_select(0, torch::randint(rows, {count}, generator, torch::kInt64));
  const torch::Tensor scale = z.std(0, /*unbiased=*/false).clamp_min(1e-3) * 0.01;
  return picked + torch::randn(picked.sizes(), generator, picked.options()) * scale;
}

int64_t EmaCodebookImpl::restart_dead(const torch::Tensor& z, int64_t after, at::Generator& generator) {
  torch::NoGradGuard no_grad;
  const torch::Tensor dead = unused.ge(after).nonzero().squeeze(1);
  const int64_t count = dead.numel();
  if (count == 0 || z.size(0) == 0) return 0;
  const torch::Tensor fresh = draw_latents(z.to(embedding.dtype()), count, generator);
  embedding.index_copy_(0, dead, fresh);
  embed_sum.index_copy_(0, dead, fresh);
  cluster_size.index_fill_(0, dead, 1.0);
  unused.index_fill_(0, dead, 0);
  return count;
}

void EmaCodebookImpl::reset_from(const torch::Tensor& z, at::Generator& generator) {
  torch::NoGradGuard no_grad;
  embedding.copy_(draw_latents(z.to(embedding.dtype()), size(), generator));
  embed_sum.copy_(embedding);
  cluster_size.fill_(1.0);
  unused.zero_();
}

}  // namespace sapling::vq
