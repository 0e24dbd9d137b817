// The fused CPU attention kernel against the tensor path of attention(): masks, head widths, lengths, bf16, grad.
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

TEST_CASE("attention keeps autograd: with gradients required the tensor path runs and backpropagates", "[attention]") {
  torch::manual_seed(3);
  const auto q = torch::randn({1, 2, 9, 16}, torch::requires_grad()), k = torch::randn({1, 2, 9, 16}),
             v = torch::randn({1, 2, 9, 16});
  const auto out = attention(q, k, v, torch::ones({1, 9}, torch::kBool), 0.25, false).output;
  REQUIRE(out.requires_grad());
  out.sum().backward();
  REQUIRE(q.grad().defined());
  CHECK(q.grad().abs().sum().item<double>() > 0);
}
