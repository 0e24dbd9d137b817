// The 3Di state computation (design/MODELS.md steps 1-6), in Foldseek's arithmetic order so states match bit for bit.
#include <cmath>
#include <limits>

#include "sapling/error.hpp"
#include "three_di.hpp"

namespace sapling::foldseek3di {
namespace {

// Foldseek's constants, including its 12-digit pi (using M_PI instead moves
// cos(270 deg) by an ulp, which can flip a distance tie).
constexpr double kPi = 3.14159265359;
constexpr double kCaCbDistance = 1.5336;
constexpr double kVirtualCenterAngle = 270.0;  // degrees, in the CA-N-CB plane
constexpr double kVirtualCenterScale = 2.0;

Vec3 add(const Vec3& a, const Vec3& b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec3 sub(const Vec3& a, const Vec3& b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Vec3 scale(const Vec3& a, double f) { return {a.x * f, a.y * f, a.z * f}; }
double dot(const Vec3& a, const Vec3& b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
// Divides by the length (not multiply by its inverse): Foldseek's rounding.
Vec3 unit(const Vec3& a) {
  const double len = std::sqrt(a.x * a.x + a.y * a.y + a.z * a.z);
  return {a.x / len, a.y / len, a.z / len};
}
double distance(const Vec3& a, const Vec3& b) {
  const double dx = a.x - b.x, dy = a.y - b.y, dz = a.z - b.z;
  return std::sqrt(dx * dx + dy * dy + dz * dz);
}
bool missing(const Vec3& a) { return std::isnan(a.x); }

}  // namespace

Vec3 ideal_cb(const Vec3& ca, const Vec3& n, const Vec3& c) {
  const Vec3 v1 = unit(sub(c, ca));
  const Vec3 v2 = unit(sub(n, ca));
  const Vec3 b1 = add(v2, scale(v1, 1 / 3.0));
  const Vec3 b2 = cross(v1, b1);
  const Vec3 u1 = unit(b1);
  const Vec3 u2 = unit(b2);
  const Vec3 direction =
      add(scale(v1, -1 / 3.0), scale(sub(scale(u1, -1 / 2.0), scale(u2, std::sqrt(3.0) / 2.0)), std::sqrt(8.0) / 3.0));
  return add(ca, scale(direction, kCaCbDistance));
}

Vec3 virtual_center(const Vec3& ca, const Vec3& cb, const Vec3& n) {
  // Rodrigues rotation of CB - CA about the normal of the CA-N-CB plane.
  // (Foldseek follows with a rotation by 0 degrees about CA-N, an identity.)
  const double alpha = (kVirtualCenterAngle / 180) * kPi;
  Vec3 v = sub(cb, ca);
  const Vec3 k = unit(cross(sub(cb, ca), sub(n, ca)));
  v = add(add(scale(v, std::cos(alpha)), scale(cross(k, v), std::sin(alpha))),
          scale(scale(k, dot(k, v)), 1 - std::cos(alpha)));
  return add(ca, scale(v, kVirtualCenterScale));
}

std::array<double, kNumFeatures> pair_features(const std::vector<Vec3>& ca, int64_t i, int64_t j) {
  const Vec3 u1 = unit(sub(ca[i], ca[i - 1]));
  const Vec3 u2 = unit(sub(ca[i + 1], ca[i]));
  const Vec3 u3 = unit(sub(ca[j], ca[j - 1]));
  const Vec3 u4 = unit(sub(ca[j + 1], ca[j]));
  const Vec3 u5 = unit(sub(ca[j], ca[i]));
  const double offset = static_cast<double>(j - i);
  return {dot(u1, u2),
          dot(u3, u4),
          dot(u1, u5),
          dot(u3, u5),
          dot(u1, u4),
          dot(u2, u3),
          dot(u1, u3),
          distance(ca[i], ca[j]),
          std::copysign(std::fmin(std::fabs(offset), 4.0), offset),
          std::copysign(std::log(std::fabs(offset) + 1), offset)};
}

ChainStates compute_states(const std::vector<Vec3>& n, const std::vector<Vec3>& ca, const std::vector<Vec3>& c,
                           const std::vector<Vec3>& cb_in, const DenseNetwork& encoder, const Centroids& centroids) {
  const int64_t len = static_cast<int64_t>(ca.size());
  if (static_cast<int64_t>(n.size()) != len || static_cast<int64_t>(c.size()) != len ||
      static_cast<int64_t>(cb_in.size()) != len)
    fail("foldseek_3di: N, CA, C and CB arrays differ in length");
  if (encoder.inputs() != kNumFeatures || encoder.outputs() != kEmbeddingDim)
    fail("foldseek_3di: the encoder maps ", encoder.inputs(), " -> ", encoder.outputs(), " values, expected ",
         kNumFeatures, " -> ", kEmbeddingDim);

  ChainStates out;
  out.states.assign(len, kMaskState);
  out.partner.assign(len, -1);
  out.valid.assign(len, false);
  if (len < 3) return out;  // no interior residue

  // Steps 1-2: virtual centres (from the ideal CB where CB is missing).
  std::vector<Vec3> center(len);
  for (int64_t i = 0; i < len; ++i) {
    const Vec3 cb = missing(cb_in[i]) ? ideal_cb(ca[i], n[i], c[i]) : cb_in[i];
    center[i] = virtual_center(ca[i], cb, n[i]);
  }

  // Step 3: validity, then the nearest partner by virtual-centre distance.
  // As in Foldseek, a residue left without partner becomes invalid at once,
  // so later residues no longer consider it.
  std::vector<bool> valid(len);
  for (int64_t i = 0; i < len; ++i) valid[i] = !missing(ca[i]) && !missing(c[i]) && !missing(n[i]);
  for (int64_t i = 1; i < len - 1; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t j = 1; j < len - 1; ++j) {
      if (j == i || !valid[j]) continue;
      const double d = distance(center[i], center[j]);
      if (d < best) {  // strict: the first minimum wins
        best = d;
        out.partner[i] = j;
      }
    }
    if (out.partner[i] == -1) valid[i] = false;
  }

  // Step 4: features need i-1, i, i+1, j-1, j, j+1 valid (judged on the
  // validity before this pass); the chain ends are always masked.
  const std::vector<bool> usable = valid;
  std::vector<std::array<double, kNumFeatures>> features(len);
  for (int64_t i = 1; i < len - 1; ++i) {
    const int64_t j = out.partner[i];
    if (usable[i - 1] && usable[i] && usable[i + 1] && usable[j - 1] && usable[j] && usable[j + 1])
      features[i] = pair_features(ca, i, j);
    else
      valid[i] = false;
  }
  valid[0] = false;
  valid[len - 1] = false;

  // Steps 5-6: float32 encoder, nearest centroid in double.
  std::vector<float> input(kNumFeatures);
  for (int64_t i = 0; i < len; ++i) {
    if (!valid[i]) continue;
    for (int f = 0; f < kNumFeatures; ++f) input[f] = static_cast<float>(features[i][f]);
    const std::vector<float> embedding = encoder.apply(input);
    double best = std::numeric_limits<double>::infinity();
    int64_t state = kMaskState;
    for (int s = 0; s < kNumStates; ++s) {
      double sum = 0.0;
      for (int k = 0; k < kEmbeddingDim; ++k) {
        const double diff = static_cast<double>(embedding[k]) - centroids[s][k];
        sum += diff * diff;
      }
      if (sum < best) {
        best = sum;
        state = s;
      }
    }
    out.states[i] = state;
  }
  out.valid = valid;
  return out;
}

}  // namespace sapling::foldseek3di
