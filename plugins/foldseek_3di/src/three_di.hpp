// Foldseek's 3Di structural alphabet: weight/centroid loading and the per-residue state computation.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace sapling::foldseek3di {

// Coordinates in double, as Foldseek computes them; NaN marks a missing atom.
struct Vec3 {
  double x, y, z;
};

constexpr int kNumFeatures = 10;
constexpr int kEmbeddingDim = 2;
constexpr int kNumStates = 20;
constexpr int kMaskState = 2;  // Foldseek's INVALID_STATE ('D')
constexpr const char* kAlphabet = "ACDEFGHIKLMNPQRSTVWY";

// A stack of dense layers read from a kerasify file (the format Foldseek ships
// its 3Di encoder in). Evaluated in float32 with Foldseek's summation order.
class DenseNetwork {
 public:
  struct Layer {
    int64_t inputs = 0, outputs = 0;
    std::vector<float> weights;  // [inputs][outputs], row-major
    std::vector<float> bias;     // [outputs]
    bool relu = false;           // false: linear
  };

  // Throws sapling::Error naming `path` and the byte offset of the problem.
  static DenseNetwork load(const std::filesystem::path& path);

  int64_t inputs() const { return layers_.front().inputs; }
  int64_t outputs() const { return layers_.back().outputs; }
  const std::vector<Layer>& layers() const { return layers_; }

  // `in` has inputs() values; returns outputs() values.
  std::vector<float> apply(const std::vector<float>& in) const;

 private:
  std::vector<Layer> layers_;
};

using Centroids = std::array<std::array<double, kEmbeddingDim>, kNumStates>;

// Reads the "state letter x y" table; throws sapling::Error naming file:line.
Centroids load_centroids(const std::filesystem::path& path);

// Steps of the algorithm, exposed for tests and for other tokenizers that
// want the same geometry.

// Ideal CB from N, CA, C (tetrahedral geometry, CA-CB 1.5336 A).
Vec3 ideal_cb(const Vec3& ca, const Vec3& n, const Vec3& c);
// CB - CA rotated by 270 degrees about (CB - CA) x (N - CA), doubled, from CA.
Vec3 virtual_center(const Vec3& ca, const Vec3& cb, const Vec3& n);

// The 10 conformation features of residue i with partner j (both interior).
std::array<double, kNumFeatures> pair_features(const std::vector<Vec3>& ca, int64_t i, int64_t j);

struct ChainStates {
  std::vector<int64_t> states;   // one per residue, kMaskState where masked
  std::vector<int64_t> partner;  // partner index, -1 if none
  std::vector<bool> valid;       // residue got a real (unmasked) state
};

// Foldseek's structure2states over one chain. Missing CB (NaN) is rebuilt
// ideally; a residue needs N, CA and C. Vectors must have equal length.
ChainStates compute_states(const std::vector<Vec3>& n, const std::vector<Vec3>& ca, const std::vector<Vec3>& c,
                           const std::vector<Vec3>& cb, const DenseNetwork& encoder, const Centroids& centroids);

}  // namespace sapling::foldseek3di
