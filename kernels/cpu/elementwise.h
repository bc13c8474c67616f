// Elementwise CPU ops and scalar helpers shared by the other CPU kernels.
//
// All math is fp32 on float pointers. Functions are pure (no global state) and thread-safe for
// distinct outputs. In-place functions take the array they modify as their first argument.
#pragma once

#include <cmath>
#include <cstdint>

namespace tandem::kernels::cpu {

// silu(v) = v * sigmoid(v) = v / (1 + exp(-v)).
inline float Silu(float v) { return v / (1.0f + std::exp(-v)); }

// softplus(v) = log(1 + exp(v)), with the Triton/mamba_ssm threshold: v > 20 returns v.
inline float Softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

// sum_i a[i] * b[i] in fp32 with 8 partial sums (vectorisable; the order differs from a plain
// loop).
inline float Dot(const float* a, const float* b, int64_t n) {
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) part[k] += a[i + k] * b[i + k];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7])) +
         tail;
}

// x[i] = relu(x[i])^2 for i in [0, n)  (the Nemotron-H MLP activation).
void ReluSquaredInPlace(float* x, int64_t n);

// dst[i] += src[i] for i in [0, n)  (residual add; dst and src may not partially overlap).
void AddInPlace(float* dst, const float* src, int64_t n);

// x[i] = RoundToBf16(x[i]) (round-to-nearest-even, see core/dtype.h): the model's rounding points.
void RoundToBf16InPlace(float* x, int64_t n);

}  // namespace tandem::kernels::cpu
