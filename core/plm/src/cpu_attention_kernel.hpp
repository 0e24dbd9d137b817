// The fused CPU attention kernels behind attention(): forward and backward, torch-free, one (batch, head) slice per call.
#pragma once
#include <cstdint>

namespace sapling::detail {

// Largest head width the kernel takes (a query block lives on the stack); wider heads use the tensor path.
inline constexpr int64_t kFusedAttentionMaxHeadDim = 128;

// softmax(scale * q k^T + mask) v for one head, without materialising the [T, T] score matrix: four query
// rows at a time, their scores against every key in a few KB of scratch, a float32 softmax, then the value
// product, so a head's keys, values and scores stay in cache. q, k, v, out: [T, Dh] row-major float32.
// key_keep: [T] (true = may be attended) or nullptr; pair_keep: [T, T] (query x key, packed rows) or
// nullptr. Every query row must keep at least one key. `scratch` holds fused_attention_scratch_floats(T, Dh)
// floats. Compiled for AVX-512, AVX2 and baseline x86-64 (GCC target_clones picks one at load time).
// row_lse: [T] or nullptr; when given, it receives each query row's log-sum-exp of its (scaled, masked)
// scores, which is all the backward needs to rebuild the probabilities.
void attend_one_head(const float* q, const float* k, const float* v, const bool* key_keep, const bool* pair_keep,
                     int64_t T, int64_t Dh, float scale, float* out, float* row_lse, float* scratch);
int64_t fused_attention_scratch_floats(int64_t T, int64_t Dh);

// The gradients of attend_one_head() for the same head, as flash attention computes them: the probabilities
// are rebuilt four query rows at a time from row_lse (never a [T, T] matrix), then
//   dV += P^T dO,  dS = P * (dO V^T - rowsum(dO * O)),  dQ = scale * dS K,  dK += scale * dS^T Q.
// out and row_lse are the forward's outputs; dout is the gradient of out. dq, dk, dv: [T, Dh] float32,
// overwritten. `scratch` holds fused_attention_backward_scratch_floats(T, Dh) floats.
void attend_one_head_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                              const float* row_lse, const bool* key_keep, const bool* pair_keep, int64_t T, int64_t Dh,
                              float scale, float* dq, float* dk, float* dv, float* scratch);
int64_t fused_attention_backward_scratch_floats(int64_t T, int64_t Dh);

}  // namespace sapling::detail
