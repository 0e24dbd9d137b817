// NumPy .npy writing (format 1.0) for users who want arrays without safetensors.
#pragma once
#include <torch/torch.h>

#include <filesystem>

#include "sapling/export.hpp"

namespace sapling {

// Writes a CPU-contiguous copy of `tensor` as a little-endian .npy file, atomically.
SAPLING_API void save_npy(const std::filesystem::path& path, const torch::Tensor& tensor);

}  // namespace sapling
