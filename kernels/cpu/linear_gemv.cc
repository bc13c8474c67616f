// The batched GEMV path of LinearFast (kernels/cpu/linear_internal.h).
//
// Loop structure, shared by both ISAs: output rows in blocks of kRowBlock weight rows; within a
// block, the tokens in blocks of up to 4; a micro-kernel keeps R rows x TB tokens of 8-lane
// accumulators in registers and walks K once, so a block's weight rows come from memory once and
// from L1/L2 for the block's further token blocks. The K tail (K % 8) is a masked load on AVX2
// and a scalar loop in the portable version.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/logging.h"
#include "core/thread_pool.h"
#include "kernels/cpu/linear_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TANDEM_GEMV_X86 1
#else
#define TANDEM_GEMV_X86 0
#endif

namespace tandem::kernels::cpu::internal {

namespace {

constexpr int64_t kRowBlock = 8;

// Rows per micro-kernel call for a token block of TB tokens: R x TB accumulators plus TB input
// vectors and a weight vector stay within the 16 vector registers.
template <int TB>
constexpr int RowsFor() {
  return TB == 1 ? 8 : TB == 2 ? 4 : 2;
}

// ---- Portable ------------------------------------------------------------------------------

template <int R, int TB>
void MicroPortable(const float* x, const float* w, int64_t K, int64_t N, float* y) {
  float acc[R][TB][8] = {};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    for (int r = 0; r < R; ++r) {
      const float* wr = w + r * K + k;
      for (int t = 0; t < TB; ++t) {
        const float* xt = x + t * K + k;
        for (int l = 0; l < 8; ++l) acc[r][t][l] += wr[l] * xt[l];
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < TB; ++t) {
      float tail = 0.0f;
      for (int64_t i = k; i < K; ++i) tail += w[r * K + i] * x[t * K + i];
      float sum = 0.0f;
      for (int l = 0; l < 8; ++l) sum += acc[r][t][l];
      y[t * N + r] = sum + tail;
    }
  }
}

// ---- AVX2 + FMA ----------------------------------------------------------------------------

#if TANDEM_GEMV_X86

__attribute__((target("avx2,fma"))) inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lanes [0, n) of a maskload mask: kMaskSource + 8 - n starts n all-ones words.
alignas(64) constexpr int32_t kMaskSource[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                 0,  0,  0,  0,  0,  0,  0,  0};

template <int R, int TB>
__attribute__((target("avx2,fma"))) void MicroAvx2(const float* x, const float* w, int64_t K,
                                                   int64_t N, float* y) {
  __m256 acc[R][TB];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < TB; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 xv[TB];
#pragma GCC unroll 4
    for (int t = 0; t < TB; ++t) xv[t] = _mm256_loadu_ps(x + t * K + k);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * K + k);
#pragma GCC unroll 4
      for (int t = 0; t < TB; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  if (k < K) {
    const __m256i mask = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(kMaskSource + 8 - static_cast<int>(K - k)));
    __m256 xv[TB];
#pragma GCC unroll 4
    for (int t = 0; t < TB; ++t) xv[t] = _mm256_maskload_ps(x + t * K + k, mask);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_maskload_ps(w + r * K + k, mask);
#pragma GCC unroll 4
      for (int t = 0; t < TB; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < TB; ++t) y[t * N + r] = HorizontalSum(acc[r][t]);
  }
}

#endif  // TANDEM_GEMV_X86

// ---- Driver --------------------------------------------------------------------------------

// Rows [row, row + rows) (rows <= kRowBlock) for the TB tokens starting at x / y.
template <int TB>
void TokenBlock(const float* x, const float* w, int64_t K, int64_t N, float* y, int64_t row,
                int64_t rows, CpuIsa isa) {
  constexpr int R = RowsFor<TB>();
  int64_t r = 0;
#if TANDEM_GEMV_X86
  if (isa == CpuIsa::kAvx2Fma) {
    for (; r + R <= rows; r += R) MicroAvx2<R, TB>(x, w + (row + r) * K, K, N, y + row + r);
    for (; r < rows; ++r) MicroAvx2<1, TB>(x, w + (row + r) * K, K, N, y + row + r);
    return;
  }
#endif
  (void)isa;
  for (; r + R <= rows; r += R) MicroPortable<R, TB>(x, w + (row + r) * K, K, N, y + row + r);
  for (; r < rows; ++r) MicroPortable<1, TB>(x, w + (row + r) * K, K, N, y + row + r);
}

}  // namespace

bool GemvEnabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("TANDEM_LINEAR_GEMV");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return enabled;
}

void GemvColumns(const LinearParams& p, int64_t begin, int64_t end, CpuIsa isa) {
  TANDEM_CHECK(0 <= begin && begin <= end && end <= p.out_features)
      << "rows [" << begin << ", " << end << ") of " << p.out_features;
  TANDEM_CHECK(CpuIsaSupported(isa)) << "GEMV ISA " << static_cast<int>(isa) << " unsupported";
  const int64_t T = p.num_tokens, K = p.in_features, N = p.out_features;
  for (int64_t row = begin; row < end; row += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, end - row);
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) TokenBlock<4>(p.x + t * K, p.w, K, N, p.y + t * N, row, rows, isa);
    switch (T - t) {
      case 3:
        TokenBlock<3>(p.x + t * K, p.w, K, N, p.y + t * N, row, rows, isa);
        break;
      case 2:
        TokenBlock<2>(p.x + t * K, p.w, K, N, p.y + t * N, row, rows, isa);
        break;
      case 1:
        TokenBlock<1>(p.x + t * K, p.w, K, N, p.y + t * N, row, rows, isa);
        break;
      default:
        break;
    }
  }
}

void LinearGemv(const LinearParams& p, CpuIsa isa) {
  TANDEM_CHECK(p.x != nullptr && p.w != nullptr && p.y != nullptr);
  TANDEM_CHECK(p.num_tokens >= 0 && p.in_features > 0 && p.out_features > 0);
  if (p.num_tokens == 0) return;
  const int64_t T = p.num_tokens, K = p.in_features, N = p.out_features;
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
  // Small products run inline, without the pool (whose std::function would allocate): a pool
  // hand-off costs more than it saves below ~1M FMAs.
  if (T * N * K < (int64_t{1} << 20)) {
    GemvColumns(p, 0, N, isa);
    return;
  }
  core::ThreadPool::Default().ParallelFor(
      blocks,
      [&](int64_t b, int64_t e) { GemvColumns(p, b * kRowBlock, std::min(N, e * kRowBlock), isa); },
      8);
}

}  // namespace tandem::kernels::cpu::internal
