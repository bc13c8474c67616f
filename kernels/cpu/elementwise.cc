#include "kernels/cpu/elementwise.h"

#include "core/dtype.h"

namespace tandem::kernels::cpu {

void ReluSquaredInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = x[i] > 0.0f ? x[i] : 0.0f;
    x[i] = r * r;
  }
}

void AddInPlace(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

void RoundToBf16InPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = core::RoundToBf16(x[i]);
}

}  // namespace tandem::kernels::cpu
