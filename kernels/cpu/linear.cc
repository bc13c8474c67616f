#include "kernels/cpu/linear.h"

#include <cblas.h>

#include <mutex>

#include "core/logging.h"
#include "core/thread_pool.h"
#include "kernels/cpu/linear_internal.h"

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
  if (p.num_tokens <= internal::kGemvMaxTokens && internal::GemvEnabled()) {
    internal::LinearGemv(p, BestCpuIsa());
  } else {
    internal::LinearBlas(p);
  }
}

namespace internal {

void LinearBlas(const LinearParams& p) {
  CheckParams(p);
  if (p.num_tokens == 0) return;
  // One thread pool for all fast kernels: OpenBLAS runs single-threaded (its spinning workers
  // would otherwise compete with core::ThreadPool) and the pool splits the output columns.
  static std::once_flag blas_single_threaded;
  std::call_once(blas_single_threaded, [] { openblas_set_num_threads(1); });
  const int64_t T = p.num_tokens, K = p.in_features, N = p.out_features;
  const bool small = T * N * K < (int64_t{1} << 20);
  core::ThreadPool::Default().ParallelFor(
      N,
      [&](int64_t begin, int64_t end) {
        // Row-major y[:, begin:end] = x[T, K] * w[begin:end, K]^T.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(T),
                    static_cast<blasint>(end - begin), static_cast<blasint>(K), 1.0f, p.x,
                    static_cast<blasint>(K), p.w + begin * K, static_cast<blasint>(K), 0.0f,
                    p.y + begin, static_cast<blasint>(N));
      },
      small ? N : 64);
}

}  // namespace internal

}  // namespace tandem::kernels::cpu
