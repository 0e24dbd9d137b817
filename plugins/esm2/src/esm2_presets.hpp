// The released ESM2 sizes (fair-esm / HF names), for building a randomly initialised model by name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sapling::esm2 {

struct Esm2Preset {
  const char* name;
  int64_t layers, hidden_size, heads;  // FFN = 4 x hidden_size, rotary, eps 1e-5
};

inline const std::vector<Esm2Preset>& esm2_presets() {
  static const std::vector<Esm2Preset> presets = {
      {"esm2_t6_8M_UR50D", 6, 320, 20},     {"esm2_t12_35M_UR50D", 12, 480, 20},
      {"esm2_t30_150M_UR50D", 30, 640, 20}, {"esm2_t33_650M_UR50D", 33, 1280, 20},
      {"esm2_t36_3B_UR50D", 36, 2560, 40},  {"esm2_t48_15B_UR50D", 48, 5120, 40},
  };
  return presets;
}

inline std::vector<std::string> esm2_preset_names() {
  std::vector<std::string> names;
  for (const auto& p : esm2_presets()) names.emplace_back(p.name);
  return names;
}

}  // namespace sapling::esm2
