#include "kernels/cpu/linear.h"

#include <cblas.h>

#include "core/logging.h"

namespace tandem::kernels::cpu {

namespace {
void CheckParams(const LinearParams& p) {
  TANDEM_CHECK(p.x != nullptr && p.w != nullptr && p.y != nullptr);
  TANDEM_CHECK(p.num_tokens >= 0 && p.in_features > 0 && p.out_features > 0);
}
}  // namespace

void Linear(const LinearParams& p) {
  CheckParams(p);
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* x = p.x + t * p.in_features;
    for (int64_t o = 0; o < p.out_features; ++o) {
      const float* w = p.w + o * p.in_features;
      double acc = 0.0;
      for (int64_t i = 0; i < p.in_features; ++i) acc += static_cast<double>(x[i]) * w[i];
      p.y[t * p.out_features + o] = static_cast<float>(acc);
    }
  }
}

void LinearFast(const LinearParams& p) {
  CheckParams(p);
  if (p.num_tokens == 0) return;
  // Row-major y[T, N] = x[T, K] * w[N, K]^T.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(p.num_tokens),
              static_cast<blasint>(p.out_features), static_cast<blasint>(p.in_features), 1.0f, p.x,
              static_cast<blasint>(p.in_features), p.w, static_cast<blasint>(p.in_features), 0.0f,
              p.y, static_cast<blasint>(p.out_features));
}

}  // namespace tandem::kernels::cpu
