// The fused CPU attention kernel of attention() (see cpu_attention_kernel.hpp): GCC vector extensions, one
// 16-float vector type that each target_clones clone maps onto its own registers.
#include "cpu_attention_kernel.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace sapling::detail {
namespace {

// 16 floats: one AVX-512 register, two AVX2 registers or four SSE registers, whichever the clone targets.
typedef float f16v __attribute__((vector_size(64)));
typedef int32_t i16v __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
constexpr int64_t kRows = 4;  // query rows per pass: each key vector loaded feeds kRows products

int64_t round_up(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

inline f16v load(const float* p) {
  f16v x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}
inline void store(float* p, f16v x) { std::memcpy(p, &x, sizeof(x)); }
inline f16v splat(float x) { return f16v{} + x; }

// exp(x) for x <= 0 (softmax arguments after subtracting the row maximum): range reduction to
// r in [-ln2/2, ln2/2], a degree-7 Taylor polynomial (truncation error < 6e-9 relative), then 2^n through
// the exponent bits. Arguments below -87 (the float normal range) give exp(-87) ~ 1.6e-38, negligible
// against the row maximum's 1; -inf is handled by the caller.
inline f16v exp_nonpositive(f16v x) {
  x = x < -87.0f ? splat(-87.0f) : x;
  const i16v n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, i16v);  // truncation = rounding here
  const f16v nf = __builtin_convertvector(n, f16v);
  const f16v r = (x - nf * 0.693145751953125f) - nf * 1.428606765330187e-06f;  // ln 2 in two parts
  f16v p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const i16v bits = (n + 127) << 23;
  f16v two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return p * two_n;
}

inline float horizontal_max(f16v x) {
  float m = x[0];
  for (int l = 1; l < kLanes; ++l) m = std::max(m, x[l]);
  return m;
}
inline float horizontal_sum(f16v x) {
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += x[l];
  return s;
}

}  // namespace

int64_t fused_attention_scratch_floats(int64_t T, int64_t Dh) {
  return round_up(T) * (Dh + 1 + kRows) + T * round_up(Dh);
}

// Compiled for AVX-512, AVX2 and baseline x86-64; the loader picks the clone for the CPU (GCC target_clones).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void attend_one_head(const float* q, const float* k, const float* v, const bool* key_keep, const bool* pair_keep,
                     int64_t T, int64_t Dh, float scale, float* out, float* scratch) {
  const int64_t Tp = round_up(T), Dp = round_up(Dh), blocks = Tp / kLanes;
  // Keys blocked as [Tp / 16][Dh][16]: a block's Dh vectors are contiguous. Zero beyond T.
  float* kb = scratch;
  float* bias = kb + Tp * Dh;  // [Tp]: 0 for kept keys, -inf for masked keys and padding
  float* s = bias + Tp;        // [kRows][Tp]: scores, then unnormalised probabilities
  float* vp = s + kRows * Tp;  // [T][Dp]: values, rows padded with zeros to a multiple of 16
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t d = 0; d < Dh; ++d)
      for (int64_t l = 0; l < kLanes; ++l) {
        const int64_t j = b * kLanes + l;
        kb[(b * Dh + d) * kLanes + l] = j < T ? k[j * Dh + d] : 0.0f;
      }
  for (int64_t j = 0; j < T; ++j) {
    std::copy(v + j * Dh, v + (j + 1) * Dh, vp + j * Dp);
    std::fill(vp + j * Dp + Dh, vp + (j + 1) * Dp, 0.0f);
  }
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < Tp; ++j) bias[j] = j < T && (key_keep == nullptr || key_keep[j]) ? 0.0f : kMinusInf;

  for (int64_t i0 = 0; i0 < T; i0 += kRows) {
    const int64_t rows = std::min(kRows, T - i0);
    float qs[kRows][kFusedAttentionMaxHeadDim];  // scaled query rows (the caller checks Dh)
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t d = 0; d < Dh; ++d) qs[r][d] = r < rows ? scale * q[(i0 + r) * Dh + d] : 0.0f;
    // Scores: for each block of 16 keys, kRows accumulators over the Dh products.
    for (int64_t b = 0; b < blocks; ++b) {
      const float* kblock = kb + b * Dh * kLanes;
      f16v a0 = load(bias + b * kLanes), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t d = 0; d < Dh; ++d) {
        const f16v kv = load(kblock + d * kLanes);
        a0 += qs[0][d] * kv;
        a1 += qs[1][d] * kv;
        a2 += qs[2][d] * kv;
        a3 += qs[3][d] * kv;
      }
      store(s + b * kLanes, a0);
      store(s + Tp + b * kLanes, a1);
      store(s + 2 * Tp + b * kLanes, a2);
      store(s + 3 * Tp + b * kLanes, a3);
    }
    // Softmax numerators (float32) and row sums.
    float inv_sum[kRows] = {0, 0, 0, 0};
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = s + r * Tp;
      if (pair_keep != nullptr) {
        const bool* keep = pair_keep + (i0 + r) * T;
        for (int64_t j = 0; j < T; ++j) sr[j] = keep[j] ? sr[j] : kMinusInf;
      }
      f16v m = load(sr);
      for (int64_t b = 1; b < blocks; ++b) m = m > load(sr + b * kLanes) ? m : load(sr + b * kLanes);
      const float row_max = horizontal_max(m);
      f16v sum = {};
      for (int64_t b = 0; b < blocks; ++b) {
        const f16v x = load(sr + b * kLanes);
        const f16v e = x == kMinusInf ? f16v{} : exp_nonpositive(x - row_max);
        store(sr + b * kLanes, e);
        sum += e;
      }
      inv_sum[r] = 1.0f / horizontal_sum(sum);
    }
    // Values: out[i0 + r] = sum_j p[r][j] v[j] / sum[r], 16 output features at a time in registers.
    for (int64_t c = 0; c < Dp; c += kLanes) {
      f16v o0 = {}, o1 = {}, o2 = {}, o3 = {};
      for (int64_t j = 0; j < T; ++j) {
        const f16v vv = load(vp + j * Dp + c);
        o0 += s[j] * vv;
        o1 += s[Tp + j] * vv;
        o2 += s[2 * Tp + j] * vv;
        o3 += s[3 * Tp + j] * vv;
      }
      const f16v o[kRows] = {o0 * inv_sum[0], o1 * inv_sum[1], o2 * inv_sum[2], o3 * inv_sum[3]};
      const int64_t width = std::min(kLanes, Dh - c);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t l = 0; l < width; ++l) out[(i0 + r) * Dh + c + l] = o[r][l];
    }
  }
}

}  // namespace sapling::detail
