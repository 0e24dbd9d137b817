// The fused CPU attention kernels of attention() (see cpu_attention_kernel.hpp): GCC vector extensions, one
// 16-float vector type that each target_clones clone maps onto its own registers.
#include "cpu_attention_kernel.hpp"

#include <algorithm>
#include <cmath>
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

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// Rows [T][Dh] into blocks [Tp / 16][Dh][16] (a block's Dh vectors contiguous), zero beyond T: the layout in
// which one vector load feeds four query rows' products against 16 keys.
void block_rows(const float* x, int64_t T, int64_t Dh, float* blocked) {
  const int64_t blocks = round_up(T) / kLanes;
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t d = 0; d < Dh; ++d)
      for (int64_t l = 0; l < kLanes; ++l) {
        const int64_t j = b * kLanes + l;
        blocked[(b * Dh + d) * kLanes + l] = j < T ? x[j * Dh + d] : 0.0f;
      }
}

// Rows [T][Dh] into [T][Dp], each row padded with zeros to a multiple of 16.
void pad_rows(const float* x, int64_t T, int64_t Dh, float* padded) {
  const int64_t Dp = round_up(Dh);
  for (int64_t j = 0; j < T; ++j) {
    std::copy(x + j * Dh, x + (j + 1) * Dh, padded + j * Dp);
    std::fill(padded + j * Dp + Dh, padded + (j + 1) * Dp, 0.0f);
  }
}

// [Tp]: 0 for kept keys, -inf for masked keys and padding (added to every score).
void key_bias(const bool* key_keep, int64_t T, float* bias) {
  for (int64_t j = 0; j < round_up(T); ++j)
    bias[j] = j < T && (key_keep == nullptr || key_keep[j]) ? 0.0f : kMinusInf;
}

// Four rows (kRows x Dh, zero rows past the end) dotted with one block of 16 keys ([Dh][16], block_rows'
// layout), each added to `init`: row r's 16 results go to out + r * stride.
inline __attribute__((always_inline)) void dot_rows_with_block(const float (*rows)[kFusedAttentionMaxHeadDim],
                                                               const float* block, int64_t Dh, f16v init, float* out,
                                                               int64_t stride) {
  f16v a0 = init, a1 = init, a2 = init, a3 = init;
  for (int64_t d = 0; d < Dh; ++d) {
    const f16v x = load(block + d * kLanes);
    a0 += rows[0][d] * x;
    a1 += rows[1][d] * x;
    a2 += rows[2][d] * x;
    a3 += rows[3][d] * x;
  }
  store(out, a0);
  store(out + stride, a1);
  store(out + 2 * stride, a2);
  store(out + 3 * stride, a3);
}

// For each of four rows r: row_scale[r] * sum_j weights[r * stride + j] * padded[j], over the T rows of `padded`
// ([T][Dp], pad_rows' layout), 16 output features at a time in registers. The first `rows` results are written
// to dest ([rows][Dh] row-major).
inline __attribute__((always_inline)) void weighted_row_sums(const float* weights, int64_t stride, const float* padded,
                                                             int64_t T, int64_t Dh, const float* row_scale,
                                                             int64_t rows, float* dest) {
  const int64_t Dp = round_up(Dh);
  for (int64_t c = 0; c < Dp; c += kLanes) {
    f16v o0 = {}, o1 = {}, o2 = {}, o3 = {};
    for (int64_t j = 0; j < T; ++j) {
      const f16v x = load(padded + j * Dp + c);
      o0 += weights[j] * x;
      o1 += weights[stride + j] * x;
      o2 += weights[2 * stride + j] * x;
      o3 += weights[3 * stride + j] * x;
    }
    const f16v o[kRows] = {o0 * row_scale[0], o1 * row_scale[1], o2 * row_scale[2], o3 * row_scale[3]};
    const int64_t width = std::min(kLanes, Dh - c);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t l = 0; l < width; ++l) dest[r * Dh + c + l] = o[r][l];
  }
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
                     int64_t T, int64_t Dh, float scale, float* out, float* row_lse, float* scratch) {
  const int64_t Tp = round_up(T), Dp = round_up(Dh), blocks = Tp / kLanes;
  float* kb = scratch;         // keys, blocked
  float* bias = kb + Tp * Dh;  // [Tp]
  float* s = bias + Tp;        // [kRows][Tp]: scores, then unnormalised probabilities
  float* vp = s + kRows * Tp;  // [T][Dp]: values, padded rows
  block_rows(k, T, Dh, kb);
  pad_rows(v, T, Dh, vp);
  key_bias(key_keep, T, bias);

  for (int64_t i0 = 0; i0 < T; i0 += kRows) {
    const int64_t rows = std::min(kRows, T - i0);
    float qs[kRows][kFusedAttentionMaxHeadDim];  // scaled query rows (the caller checks Dh)
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t d = 0; d < Dh; ++d) qs[r][d] = r < rows ? scale * q[(i0 + r) * Dh + d] : 0.0f;
    // Scores: for each block of 16 keys, kRows accumulators over the Dh products.
    for (int64_t b = 0; b < blocks; ++b)
      dot_rows_with_block(qs, kb + b * Dh * kLanes, Dh, load(bias + b * kLanes), s + b * kLanes, Tp);
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
      const float total = horizontal_sum(sum);
      inv_sum[r] = 1.0f / total;
      if (row_lse != nullptr) row_lse[i0 + r] = row_max + std::log(total);
    }
    // Values: out[i0 + r] = sum_j p[r][j] v[j] / sum[r].
    weighted_row_sums(s, Tp, vp, T, Dh, inv_sum, rows, out + i0 * Dh);
  }
}

int64_t fused_attention_backward_scratch_floats(int64_t T, int64_t Dh) {
  const int64_t Tp = round_up(T), Dp = round_up(Dh);
  return 2 * Tp * Dh + Tp + 2 * kRows * Tp + 3 * T * Dp;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void attend_one_head_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                              const float* row_lse, const bool* key_keep, const bool* pair_keep, int64_t T, int64_t Dh,
                              float scale, float* dq, float* dk, float* dv, float* scratch) {
  const int64_t Tp = round_up(T), Dp = round_up(Dh), blocks = Tp / kLanes;
  float* kb = scratch;           // keys, blocked (scores)
  float* vb = kb + Tp * Dh;      // values, blocked (dO V^T)
  float* bias = vb + Tp * Dh;    // [Tp]
  float* p = bias + Tp;          // [kRows][Tp]: probabilities of the current query rows
  float* ds = p + kRows * Tp;    // [kRows][Tp]: first dO V^T, then the score gradients dS
  float* kp = ds + kRows * Tp;   // [T][Dp]: keys, padded rows (dQ = dS K)
  float* dkp = kp + T * Dp;      // [T][Dp]: dK accumulated over query blocks
  float* dvp = dkp + T * Dp;     // [T][Dp]: dV accumulated over query blocks
  block_rows(k, T, Dh, kb);
  block_rows(v, T, Dh, vb);
  pad_rows(k, T, Dh, kp);
  key_bias(key_keep, T, bias);
  std::fill(dkp, dkp + 2 * T * Dp, 0.0f);

  for (int64_t i0 = 0; i0 < T; i0 += kRows) {
    const int64_t rows = std::min(kRows, T - i0);
    // Scaled query rows and output-gradient rows, zero-padded to Dp and to kRows rows.
    float qs[kRows][kFusedAttentionMaxHeadDim] = {}, go[kRows][kFusedAttentionMaxHeadDim] = {};
    float delta[kRows] = {0, 0, 0, 0};  // rowsum(dO * O): the softmax Jacobian's correction term
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t d = 0; d < Dh; ++d) {
        qs[r][d] = scale * q[(i0 + r) * Dh + d];
        go[r][d] = dout[(i0 + r) * Dh + d];
        delta[r] += go[r][d] * out[(i0 + r) * Dh + d];
      }
    // Scores (into p) and dO V^T (into ds), 16 keys at a time.
    for (int64_t b = 0; b < blocks; ++b) {
      dot_rows_with_block(qs, kb + b * Dh * kLanes, Dh, load(bias + b * kLanes), p + b * kLanes, Tp);
      dot_rows_with_block(go, vb + b * Dh * kLanes, Dh, f16v{}, ds + b * kLanes, Tp);
    }
    // P = exp(score - lse) (0 where masked) and dS = P * (dO V^T - delta). Rows past the end of the head get
    // zeros, so they add nothing to dK and dV.
    for (int64_t r = 0; r < kRows; ++r) {
      float *pr = p + r * Tp, *dsr = ds + r * Tp;
      if (r >= rows) {
        std::fill(pr, pr + Tp, 0.0f);
        std::fill(dsr, dsr + Tp, 0.0f);
        continue;
      }
      if (pair_keep != nullptr) {
        const bool* keep = pair_keep + (i0 + r) * T;
        for (int64_t j = 0; j < T; ++j) pr[j] = keep[j] ? pr[j] : kMinusInf;
      }
      const float lse = row_lse[i0 + r], dr = delta[r];
      for (int64_t b = 0; b < blocks; ++b) {
        const f16v x = load(pr + b * kLanes);
        const f16v e = x == kMinusInf ? f16v{} : exp_nonpositive(x - lse);
        store(pr + b * kLanes, e);
        store(dsr + b * kLanes, e * (load(dsr + b * kLanes) - dr));
      }
    }
    // dQ rows = scale * dS K.
    const float scales[kRows] = {scale, scale, scale, scale};
    weighted_row_sums(ds, Tp, kp, T, Dh, scales, rows, dq + i0 * Dh);
    // dK += dS^T (scale Q) and dV += P^T dO, key by key.
    for (int64_t j = 0; j < T; ++j) {
      const float s0 = ds[j], s1 = ds[Tp + j], s2 = ds[2 * Tp + j], s3 = ds[3 * Tp + j];
      const float p0 = p[j], p1 = p[Tp + j], p2 = p[2 * Tp + j], p3 = p[3 * Tp + j];
      for (int64_t c = 0; c < Dp; c += kLanes) {
        float* dkr = dkp + j * Dp + c;
        float* dvr = dvp + j * Dp + c;
        store(dkr, load(dkr) + s0 * load(qs[0] + c) + s1 * load(qs[1] + c) + s2 * load(qs[2] + c) +
                       s3 * load(qs[3] + c));
        store(dvr, load(dvr) + p0 * load(go[0] + c) + p1 * load(go[1] + c) + p2 * load(go[2] + c) +
                       p3 * load(go[3] + c));
      }
    }
  }
  for (int64_t j = 0; j < T; ++j)
    for (int64_t d = 0; d < Dh; ++d) {
      dk[j * Dh + d] = dkp[j * Dp + d];
      dv[j * Dh + d] = dvp[j * Dp + d];
    }
}

}  // namespace sapling::detail
