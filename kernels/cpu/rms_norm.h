// RMSNorm and the Mamba-2 gated grouped RMSNorm (fp32 math).
//
//   RmsNorm:       out[t, :] = weight * (x[t, :] * rsqrt(mean(x[t, :]^2) + eps))
//   GatedRmsNorm:  u = y * silu(z)                       (gate first: norm_before_gate=False)
//                  per group of group_size contiguous channels: u_g * rsqrt(mean(u_g^2) + eps)
//                  out = normalized u * weight
// Sums of squares accumulate in double. `out` may alias `x` (RmsNorm) or `y` (GatedRmsNorm).
// No rounding is done here: the model rounds the result to bf16 where the reference does.
// Thread-safe for distinct outputs.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

struct RmsNormParams {
  const float* x = nullptr;       // [num_tokens, hidden]
  const float* weight = nullptr;  // [hidden]
  float* out = nullptr;           // [num_tokens, hidden], may alias x
  int64_t num_tokens = 0;
  int64_t hidden = 0;
  float eps = 1e-5f;
};

void RmsNorm(const RmsNormParams& p);

struct GatedRmsNormParams {
  const float* y = nullptr;  // [num_tokens, y_stride]: channel c of token t at y[t*y_stride + c]
  const float* z = nullptr;  // [num_tokens, z_stride]: the gate, same channel layout
  const float* weight = nullptr;  // [dim]
  float* out = nullptr;           // [num_tokens, dim] (dense), may alias y when y_stride == dim
  int64_t num_tokens = 0;
  int64_t dim = 0;         // channels (d_inner, or the rank-local d_inner under TP)
  int64_t group_size = 0;  // d_inner / n_groups; must divide dim
  int64_t y_stride = 0;    // 0 means dim
  int64_t z_stride = 0;    // 0 means dim (e.g. in_proj width when z is a slice of in_proj output)
  float eps = 1e-5f;
};

void GatedRmsNorm(const GatedRmsNormParams& p);

}  // namespace tandem::kernels::cpu
