// The fused CPU attention kernels against the tensor path of attention(): masks, head widths, lengths, bf16, and
// the fused backward's gradients.
#include <catch2/catch.hpp>

#include <cmath>
#include <iostream>

#include "sapling/attention.hpp"
#include "sapling/packing.hpp"

using namespace sapling;

namespace {

// attention() with need_weights takes the tensor path (matmul, float32 softmax, matmul) whatever the device;
// without weights and without autograd it takes the fused kernel on the CPU.
double fused_vs_tensor_path(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& mask, double scale) {
  torch::NoGradGuard no_grad;
  const auto fused = attention(q, k, v, mask, scale, false).output;
  const auto reference = attention(q, k, v, mask, scale, true).output;
  REQUIRE(fused.sizes() == reference.sizes());
  REQUIRE(fused.scalar_type() == reference.scalar_type());
  return (fused.to(torch::kFloat64) - reference.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("fused CPU attention equals the tensor path: key masks, head widths, lengths off the vector width",
          "[attention]") {
  torch::manual_seed(7);
  double worst = 0;
  for (const int64_t head_dim : {8, 16, 24, 64, 128}) {
    for (const int64_t length : {1, 5, 16, 17, 130}) {
      const auto q = torch::randn({2, 3, length, head_dim}), k = torch::randn({2, 3, length, head_dim}),
                 v = torch::randn({2, 3, length, head_dim});
      auto mask = torch::ones({2, length}, torch::kBool);
      if (length > 3) mask[1].slice(0, length - 3).fill_(false);  // the second row ends in padding
      const double diff = fused_vs_tensor_path(q, k, v, mask, 1.0 / std::sqrt(static_cast<double>(head_dim)));
      INFO("head_dim " << head_dim << ", length " << length << ": max |diff| " << diff);
      CHECK(diff < 2e-6);
      worst = std::max(worst, diff);
    }
  }
  std::cout << "fused vs tensor-path attention, float32: max |diff| " << worst << "\n";
  // Large logits: the softmax must subtract the row maximum (exp(80) alone overflows nothing, exp(200) does).
  const auto q = 10 * torch::randn({1, 2, 40, 16}), k = 10 * torch::randn({1, 2, 40, 16}), v = torch::randn({1, 2, 40, 16});
  CHECK(fused_vs_tensor_path(q, k, v, torch::ones({1, 40}, torch::kBool), 1.0) < 2e-6);
}

TEST_CASE("fused CPU attention with packed rows (pair masks) and with bf16 inputs", "[attention]") {
  torch::manual_seed(11);
  const auto segments = torch::tensor({0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, -1, -1,
                                       5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5},
                                      torch::kInt64)
                            .view({2, 20});
  const auto mask = packed_attention_mask(segments);
  const auto q = torch::randn({2, 4, 20, 24}), k = torch::randn({2, 4, 20, 24}), v = torch::randn({2, 4, 20, 24});
  const double packed = fused_vs_tensor_path(q, k, v, mask, 0.2);
  std::cout << "fused vs tensor-path attention, pair mask: max |diff| " << packed << "\n";
  CHECK(packed < 2e-6);
  // bf16 in (CPU autocast's linear outputs), bf16 out; the kernel computes in float32, so it is closer to the
  // float32 result than the tensor path's bf16 products are.
  torch::NoGradGuard no_grad;
  const auto qb = q.to(torch::kBFloat16), kb = k.to(torch::kBFloat16), vb = v.to(torch::kBFloat16);
  const auto fused = attention(qb, kb, vb, mask, 0.2, false).output;
  REQUIRE(fused.scalar_type() == torch::kBFloat16);
  const auto exact = attention(qb.to(torch::kFloat32), kb.to(torch::kFloat32), vb.to(torch::kFloat32), mask, 0.2, true).output;
  CHECK((fused.to(torch::kFloat32) - exact).abs().max().item<double>() < 1e-2);
}

namespace {

struct Gradients {
  torch::Tensor output, dq, dk, dv;
};

// attention() under autograd (need_weights = false: the fused Function on the CPU, the tensor path when
// SAPLING_CPU_ATTENTION=reference or need_weights), loss = sum(output * weights) so every output element gets
// its own gradient.
Gradients attention_gradients(const torch::Tensor& q0, const torch::Tensor& k0, const torch::Tensor& v0,
                              const torch::Tensor& mask, double scale, bool need_weights, const torch::Tensor& weights) {
  const auto q = q0.detach().requires_grad_(), k = k0.detach().requires_grad_(), v = v0.detach().requires_grad_();
  const auto out = attention(q, k, v, mask, scale, need_weights).output;
  (out.to(torch::kFloat32) * weights).sum().backward();
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  REQUIRE(a.scalar_type() == b.scalar_type());
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// Forces the CPU attention kernel for a scope (the default picks per path: SDPA for float32 training on 2.x).
struct KernelChoice {
  sapling::CpuAttentionKernel before = sapling::cpu_attention_kernel();
  explicit KernelChoice(sapling::CpuAttentionKernel kernel) { sapling::set_cpu_attention_kernel(kernel); }
  ~KernelChoice() { sapling::set_cpu_attention_kernel(before); }
};

// The largest difference of output and input gradients, the fused kernels (or `kernel`) against the tensor path.
double fused_vs_tensor_gradients(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& mask, double scale,
                                 sapling::CpuAttentionKernel kernel = sapling::CpuAttentionKernel::Fused) {
  const KernelChoice choice(kernel);
  const auto weights = torch::randn(q.sizes());
  const auto fused = attention_gradients(q, k, v, mask, scale, false, weights);
  const auto reference = attention_gradients(q, k, v, mask, scale, true, weights);
  REQUIRE(fused.dq.defined());
  return std::max({max_diff(fused.output, reference.output), max_diff(fused.dq, reference.dq),
                   max_diff(fused.dk, reference.dk), max_diff(fused.dv, reference.dv)});
}

}  // namespace

TEST_CASE("fused CPU attention backward equals the tensor path's autograd: key masks, head widths, lengths",
          "[attention]") {
  torch::manual_seed(3);
  double worst = 0;
  for (const int64_t head_dim : {8, 16, 20, 64}) {
    for (const int64_t length : {1, 3, 16, 33, 100}) {
      const auto q = torch::randn({2, 3, length, head_dim}), k = torch::randn({2, 3, length, head_dim}),
                 v = torch::randn({2, 3, length, head_dim});
      auto mask = torch::ones({2, length}, torch::kBool);
      if (length > 3) mask[1].slice(0, length - 3).fill_(false);  // padded keys: their dK and dV must be 0
      const double diff = fused_vs_tensor_gradients(q, k, v, mask, 1.0 / std::sqrt(static_cast<double>(head_dim)));
      INFO("head_dim " << head_dim << ", length " << length << ": max |diff| " << diff);
      CHECK(diff < 2e-5);
      worst = std::max(worst, diff);
    }
  }
  std::cout << "fused vs tensor-path attention gradients, float32: max |diff| " << worst << "\n";
  if (sapling::has_fused_attention()) {
    // LibTorch's SDPA, which the default picks for float32 training on the CPU: the same gradients.
    double sdpa = 0;
    for (const int64_t length : {1, 33, 100}) {
      const auto q = torch::randn({2, 3, length, 20}), k = torch::randn({2, 3, length, 20}), v = torch::randn({2, 3, length, 20});
      auto mask = torch::ones({2, length}, torch::kBool);
      if (length > 3) mask[1].slice(0, length - 3).fill_(false);
      sdpa = std::max(sdpa, fused_vs_tensor_gradients(q, k, v, mask, 0.2, sapling::CpuAttentionKernel::Sdpa));
    }
    std::cout << "SDPA vs tensor-path attention gradients, float32: max |diff| " << sdpa << "\n";
    CHECK(sdpa < 2e-5);
  }
  const KernelChoice fused_kernels(sapling::CpuAttentionKernel::Fused);
  // Padded keys get exactly zero gradient, as the tensor path gives them.
  const auto q = torch::randn({1, 2, 10, 16}), k = torch::randn({1, 2, 10, 16}), v = torch::randn({1, 2, 10, 16});
  auto mask = torch::ones({1, 10}, torch::kBool);
  mask[0].slice(0, 7).fill_(false);
  const auto g = attention_gradients(q, k, v, mask, 0.25, false, torch::randn({1, 2, 10, 16}));
  CHECK(g.dk.slice(2, 7).abs().max().item<float>() == 0.0f);
  CHECK(g.dv.slice(2, 7).abs().max().item<float>() == 0.0f);
  // Large logits (near one-hot rows): the rebuilt probabilities must use the saved log-sum-exp, not a fresh sum.
  const auto qb = 10 * torch::randn({1, 2, 40, 16}), kb = 10 * torch::randn({1, 2, 40, 16}), vb = torch::randn({1, 2, 40, 16});
  // Here float32 rounding of the two paths differs by more than elsewhere (gradients in the tens): both against a
  // float64 computation, the fused kernels no further from it than the tensor path (on LibTorch 1.13 with OpenBLAS
  // the two agreed within 1e-4; 2.11's MKL moved the tensor path).
  const auto weights = torch::randn(qb.sizes());
  const auto one = torch::ones({1, 40}, torch::kBool);
  const auto fused = attention_gradients(qb, kb, vb, one, 1.0, false, weights);
  const auto tensor = attention_gradients(qb, kb, vb, one, 1.0, true, weights);
  const auto q64 = qb.to(torch::kFloat64).requires_grad_(), k64 = kb.to(torch::kFloat64).requires_grad_(),
             v64 = vb.to(torch::kFloat64).requires_grad_();
  (torch::matmul(torch::softmax(torch::matmul(q64, k64.transpose(-1, -2)), -1), v64) * weights.to(torch::kFloat64)).sum().backward();
  double fused_error = 0, tensor_error = 0;
  for (const auto& [f, t, exact] : {std::tuple{fused.dq, tensor.dq, q64.grad()}, std::tuple{fused.dk, tensor.dk, k64.grad()},
                                    std::tuple{fused.dv, tensor.dv, v64.grad()}}) {
    fused_error = std::max(fused_error, (f.to(torch::kFloat64) - exact).abs().max().item<double>());
    tensor_error = std::max(tensor_error, (t.to(torch::kFloat64) - exact).abs().max().item<double>());
  }
  std::cout << "near one-hot rows, max |error| against float64: fused " << fused_error << ", tensor path " << tensor_error << "\n";
  CHECK(fused_error <= std::max(2 * tensor_error, 1e-4));
}

TEST_CASE("fused CPU attention backward with packed rows (pair masks) and with bf16 inputs", "[attention]") {
  torch::manual_seed(5);
  const KernelChoice fused_kernels(sapling::CpuAttentionKernel::Fused);
  const auto segments = torch::tensor({1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, -1, -1, -1}, torch::kInt64)
                            .view({1, 20});
  const auto mask = packed_attention_mask(segments);
  const auto q = torch::randn({1, 4, 20, 20}), k = torch::randn({1, 4, 20, 20}), v = torch::randn({1, 4, 20, 20});
  const double packed = fused_vs_tensor_gradients(q, k, v, mask, 0.2);
  std::cout << "fused vs tensor-path attention gradients, pair mask: max |diff| " << packed << "\n";
  CHECK(packed < 2e-5);
  // bf16 in (CPU autocast), bf16 gradients out, computed in float32: within bf16 rounding of the float32 result.
  const auto weights = torch::randn(q.sizes());
  const auto qb = q.to(torch::kBFloat16), kb = k.to(torch::kBFloat16), vb = v.to(torch::kBFloat16);
  const auto fused = attention_gradients(qb, kb, vb, mask, 0.2, false, weights);
  REQUIRE(fused.dq.scalar_type() == torch::kBFloat16);
  const auto exact = attention_gradients(qb.to(torch::kFloat32), kb.to(torch::kFloat32), vb.to(torch::kFloat32), mask,
                                         0.2, true, weights);
  for (const auto& [got, want] : {std::pair{fused.dq, exact.dq}, std::pair{fused.dk, exact.dk}, std::pair{fused.dv, exact.dv}}) {
    const double relative = max_diff(got.to(torch::kFloat32), want) / want.abs().max().item<double>();
    INFO("bf16 gradient, max |diff| relative to the largest: " << relative);
    CHECK(relative < 1e-2);
  }
}

TEST_CASE("fused CPU attention under autograd: gradients reach inputs, not needed ones stay untouched", "[attention]") {
  torch::manual_seed(3);
  const KernelChoice fused_kernels(sapling::CpuAttentionKernel::Fused);
  const auto q = torch::randn({1, 2, 9, 16}, torch::requires_grad()), k = torch::randn({1, 2, 9, 16}),
             v = torch::randn({1, 2, 9, 16});
  const auto out = attention(q, k, v, torch::ones({1, 9}, torch::kBool), 0.25, false).output;
  REQUIRE(out.requires_grad());
  out.sum().backward();
  REQUIRE(q.grad().defined());
  CHECK(q.grad().abs().sum().item<double>() > 0);
  CHECK(!k.grad().defined());
}
