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

// x[i] = relu(x[i])^2 for i in [0, n)  (the Nemotron-H MLP activation).
void ReluSquaredInPlace(float* x, int64_t n);

// dst[i] += src[i] for i in [0, n)  (residual add; dst and src may not partially overlap).
void AddInPlace(float* dst, const float* src, int64_t n);

// x[i] = RoundToBf16(x[i]) (round-to-nearest-even, see core/dtype.h): the model's rounding points.
void RoundToBf16InPlace(float* x, int64_t n);

}  // namespace tandem::kernels::cpu
