// The vq_structure VQ-VAE: MLP encoder and decoder around the EMA codebook, straight-through training, weights I/O.
#include "vq_model.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>
#include <vector>

#include "features.hpp"
#include "sapling/error.hpp"
#include "sapling/safetensors.hpp"

namespace sapling::vq {
namespace {

constexpr const char* kFormat = "sapling-vq-structure";
constexpr const char* kVersion = "1";

torch::nn::Sequential mlp(int64_t in, int64_t hidden, int64_t out) {
  return torch::nn::Sequential(torch::nn::Linear(in, hidden), torch::nn::GELU(), torch::nn::Linear(hidden, hidden),
                               torch::nn::GELU(), torch::nn::Linear(hidden, out));
}

// PyTorch's default Linear initialisation (uniform in +-1/sqrt(fan_in)), drawn from our own generator so that
// a seed gives the same untrained model without touching the global RNG.
void initialise_linear(torch::nn::Sequential& net, at::Generator& generator) {
  torch::NoGradGuard no_grad;
  for (auto& module : net->modules(/*include_self=*/false))
    if (auto* linear = module->as<torch::nn::Linear>()) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(linear->weight.size(1)));
      linear->weight.uniform_(-bound, bound, generator);
      linear->bias.uniform_(-bound, bound, generator);
    }
}

int64_t metadata_int(const std::map<std::string, std::string>& metadata, const std::filesystem::path& file,
                     const std::string& key, int64_t min = 1) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) fail(file.string(), ": metadata key '", key, "' is missing (not a vq_structure weights file?)");
  try {
    size_t used = 0;
    const int64_t value = std::stoll(it->second, &used);
    if (used == it->second.size() && value >= min) return value;
  } catch (const std::exception&) {
  }
  fail(file.string(), ": metadata key '", key, "' is '", it->second, "', expected an integer >= ", min);
}

}  // namespace

VqModelImpl::VqModelImpl(const VqArchitecture& a, const VqTraining& t, uint64_t seed) : architecture(a), training(t) {
  const int64_t features = vq::num_features(a.neighbours);
  at::Generator generator = at::detail::createCPUGenerator(seed);
  encoder = register_module("encoder", mlp(features, a.hidden_dim, a.latent_dim));
  decoder = register_module("decoder", mlp(a.latent_dim, a.hidden_dim, features));
  initialise_linear(encoder, generator);
  initialise_linear(decoder, generator);
  codebook = register_module("codebook", EmaCodebook(a.codebook_size, a.latent_dim, t.decay));
  {
    torch::NoGradGuard no_grad;
    codebook->embedding.copy_(torch::randn(codebook->embedding.sizes(), generator, torch::kFloat32));
    codebook->embed_sum.copy_(codebook->embedding);
  }
  feature_mean = register_buffer("feature_mean", torch::zeros({features}));
  feature_std = register_buffer("feature_std", torch::ones({features}));
  ready = register_buffer("initialised", torch::zeros({1}, torch::kBool));
}

void VqModelImpl::initialise(const torch::Tensor& raw, at::Generator& generator) {
  torch::NoGradGuard no_grad;
  if (raw.size(0) < 2) fail("vq_structure: the first training batch has ", raw.size(0), " residues with a backbone frame; need at least 2");
  feature_mean.copy_(raw.mean(0));
  // Features are built on a unit scale (Angstrom / 10, sines, flags); the floor keeps a feature that is
  // (nearly) constant in the first batch, e.g. a flag, from blowing up later batches.
  feature_std.copy_(raw.std(0, /*unbiased=*/false).clamp_min(0.1));
  codebook->reset_from(encoder->forward(normalise(raw)), generator);
  ready.fill_(true);
}

torch::Tensor VqModelImpl::normalise(const torch::Tensor& raw) const { return (raw - feature_mean) / feature_std; }

LossParts VqModelImpl::loss(const torch::Tensor& raw, at::Generator& generator) {
  if (is_training() && !initialised()) initialise(raw, generator);
  const torch::Tensor x = normalise(raw);
  const torch::Tensor z = encoder->forward(x);
  LossParts out;
  out.codes = codebook->nearest(z.detach());
  const torch::Tensor quantised = codebook->embedding.index_select(0, out.codes);
  // Straight-through estimator: the decoder sees the code, the encoder gets the decoder's gradient.
  const torch::Tensor through = z + (quantised - z).detach();
  const torch::Tensor reconstruction = torch::mse_loss(decoder->forward(through), x);
  const torch::Tensor commitment = torch::mse_loss(z, quantised);
  out.loss = reconstruction + training.beta * commitment;
  out.reconstruction = reconstruction.item<double>();
  out.commitment = commitment.item<double>();
  if (is_training()) {
    const torch::Tensor latents = z.detach();
    codebook->ema_update(latents, out.codes);
    out.restarted = codebook->restart_dead(latents, training.restart_after, generator);
  }
  return out;
}

torch::Tensor VqModelImpl::codes(const torch::Tensor& raw) {
  torch::NoGradGuard no_grad;
  return codebook->nearest(encoder->forward(normalise(raw)));
}

Quality VqModelImpl::quality(const torch::Tensor& raw) {
  torch::NoGradGuard no_grad;
  Quality q;
  q.residues = raw.size(0);
  if (q.residues == 0) return q;
  const torch::Tensor x = normalise(raw);
  const torch::Tensor found = codebook->nearest(encoder->forward(x));
  q.reconstruction = torch::mse_loss(decoder->forward(codebook->embedding.index_select(0, found)), x).item<double>();
  const torch::Tensor counts = torch::bincount(found, {}, codebook->size()).to(torch::kFloat64);
  q.usage = counts.gt(0).sum().item<double>() / static_cast<double>(codebook->size());
  const torch::Tensor p = counts / counts.sum();
  const double entropy = -(p * torch::log(p.clamp_min(1e-300))).sum().item<double>();
  q.perplexity = std::exp(entropy);
  return q;
}

void VqModelImpl::save(const std::filesystem::path& file) const {
  NamedTensors tensors;
  for (const auto& item : named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
  for (const auto& item : named_buffers()) tensors.emplace_back(item.key(), item.value());
  save_safetensors(file, tensors,
                   {{"format", kFormat},
                    {"version", kVersion},
                    {"feature_version", std::to_string(kFeatureVersion)},
                    {"codebook_size", std::to_string(architecture.codebook_size)},
                    {"latent_dim", std::to_string(architecture.latent_dim)},
                    {"hidden_dim", std::to_string(architecture.hidden_dim)},
                    {"neighbours", std::to_string(architecture.neighbours)},
                    {"num_features", std::to_string(num_features())}});
}

VqArchitecture VqModelImpl::read_architecture(const std::filesystem::path& file) {
  if (!std::filesystem::is_regular_file(file)) fail(file.string(), ": vq_structure weights file does not exist");
  const SafetensorsFile st(file);
  const auto& metadata = st.metadata();
  const auto format = metadata.find("format");
  if (format == metadata.end() || format->second != kFormat)
    fail(file.string(), ": metadata key 'format' is '", format == metadata.end() ? "" : format->second, "', expected '",
         kFormat, "' (a weights file written by `sapling train-tokenizer` with vq_structure)");
  if (metadata_int(metadata, file, "feature_version") != kFeatureVersion)
    fail(file.string(), ": metadata key 'feature_version' is ", metadata.at("feature_version"), ", this plugin computes version ",
         kFeatureVersion, " features; retrain the tokenizer");
  VqArchitecture a;
  a.codebook_size = metadata_int(metadata, file, "codebook_size", 2);
  a.latent_dim = metadata_int(metadata, file, "latent_dim");
  a.hidden_dim = metadata_int(metadata, file, "hidden_dim");
  a.neighbours = metadata_int(metadata, file, "neighbours", 0);
  if (metadata_int(metadata, file, "num_features") != vq::num_features(a.neighbours))
    fail(file.string(), ": metadata key 'num_features' is ", metadata.at("num_features"), " but ", a.neighbours,
         " neighbours give ", vq::num_features(a.neighbours), " features");
  return a;
}

void VqModelImpl::load(const std::filesystem::path& file) {
  const SafetensorsFile st(file);
  torch::NoGradGuard no_grad;
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& item : named_parameters()) targets.emplace_back(item.key(), item.value());
  for (const auto& item : named_buffers()) targets.emplace_back(item.key(), item.value());
  for (auto& [name, target] : targets) {
    if (!st.contains(name)) fail(file.string(), ": tensor '", name, "' is missing");
    const torch::Tensor value = st.get(name);
    if (value.sizes() != target.sizes())
      fail(file.string(), ": tensor '", name, "' has shape ", value.sizes(), ", expected ", target.sizes());
    target.copy_(value.to(target.dtype()));
  }
}

}  // namespace sapling::vq
