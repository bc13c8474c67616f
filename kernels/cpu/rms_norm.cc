#include "kernels/cpu/rms_norm.h"

#include <cmath>

#include "core/logging.h"
#include "kernels/cpu/elementwise.h"

namespace tandem::kernels::cpu {

void RmsNorm(const RmsNormParams& p) {
  TANDEM_CHECK(p.x != nullptr && p.weight != nullptr && p.out != nullptr);
  TANDEM_CHECK(p.hidden > 0);
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* x = p.x + t * p.hidden;
    float* out = p.out + t * p.hidden;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < p.hidden; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
    const float inv_rms =
        static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(p.hidden) + p.eps));
    for (int64_t i = 0; i < p.hidden; ++i) out[i] = p.weight[i] * (x[i] * inv_rms);
  }
}

void GatedRmsNorm(const GatedRmsNormParams& p) {
  TANDEM_CHECK(p.y != nullptr && p.z != nullptr && p.weight != nullptr && p.out != nullptr);
  TANDEM_CHECK(p.group_size > 0 && p.dim % p.group_size == 0)
      << "dim " << p.dim << " group_size " << p.group_size;
  const int64_t y_stride = p.y_stride == 0 ? p.dim : p.y_stride;
  const int64_t z_stride = p.z_stride == 0 ? p.dim : p.z_stride;
  TANDEM_CHECK(p.out != p.y || y_stride == p.dim) << "out may alias y only when y is dense";
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* y = p.y + t * y_stride;
    const float* z = p.z + t * z_stride;
    float* out = p.out + t * p.dim;
    for (int64_t g0 = 0; g0 < p.dim; g0 += p.group_size) {
      double sum_sq = 0.0;
      for (int64_t c = g0; c < g0 + p.group_size; ++c) {
        const float u = y[c] * Silu(z[c]);
        out[c] = u;
        sum_sq += static_cast<double>(u) * u;
      }
      const float inv_rms =
          static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(p.group_size) + p.eps));
      for (int64_t c = g0; c < g0 + p.group_size; ++c) out[c] = (out[c] * inv_rms) * p.weight[c];
    }
  }
}

}  // namespace tandem::kernels::cpu
