// One chain's precomputed embeddings from a .npy or .safetensors file, validated (dtype, rank, finite values).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace sapling::precomputed {

// Reads `file` (.npy, or .safetensors holding one tensor or one named
// "embeddings") as float32 [L, D]. Accepts float16, bfloat16, float32 and
// float64, rank 2, little-endian, C or Fortran order. Fails naming the file:
// values beyond float16 (datasets store float16) included;
// another dtype or rank, a truncated or malformed file, a NaN or inf (naming
// the first such row and column).
torch::Tensor read_embedding_file(const std::filesystem::path& file);

// The array of a .npy file image (`file` names it in errors), before the checks above: float16, float32 or
// float64, rank 2, little-endian, C or Fortran order. Malformed images fail naming `file` (fuzz/fuzz_precomputed).
torch::Tensor parse_npy(const std::string& bytes, const std::string& file);

// True for the file names this plugin reads (.npy, .safetensors).
bool is_embedding_file(const std::filesystem::path& file);

}  // namespace sapling::precomputed
