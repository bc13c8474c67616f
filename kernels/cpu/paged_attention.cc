#include "kernels/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "core/logging.h"
#include "core/thread_pool.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/paged_attention_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tandem::kernels::cpu {

namespace {

void CheckParams(const PagedAttentionParams& p) {
  TANDEM_CHECK(p.q != nullptr && p.k != nullptr && p.v != nullptr && p.cu_seqlens != nullptr &&
               p.start_pos != nullptr && p.block_tables != nullptr && p.k_cache != nullptr &&
               p.v_cache != nullptr && p.out != nullptr);
  TANDEM_CHECK(p.num_q_heads > 0 && p.num_kv_heads > 0 && p.head_dim > 0 && p.block_size > 0);
  TANDEM_CHECK(p.num_q_heads % p.num_kv_heads == 0)
      << "num_q_heads " << p.num_q_heads << " num_kv_heads " << p.num_kv_heads;
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const int64_t n = p.cu_seqlens[s + 1] - p.cu_seqlens[s];
    TANDEM_CHECK(n >= 0 && p.start_pos[s] >= 0);
    const int64_t needed = (p.start_pos[s] + n + p.block_size - 1) / p.block_size;
    TANDEM_CHECK(needed <= p.max_blocks_per_seq)
        << "sequence " << s << " needs " << needed << " blocks";
    for (int64_t i = 0; i < needed; ++i) {
      const int64_t block = p.block_tables[s * p.max_blocks_per_seq + i];
      TANDEM_CHECK(block >= 0 && block < p.num_blocks) << "block " << block;
    }
  }
}

// Offset (in elements) of cache row (sequence s, position pos, kv head h).
int64_t CacheOffset(const PagedAttentionParams& p, int64_t s, int64_t pos, int64_t h) {
  const int64_t block = p.block_tables[s * p.max_blocks_per_seq + pos / p.block_size];
  return ((block * p.block_size + pos % p.block_size) * p.num_kv_heads + h) * p.head_dim;
}

void WriteCache(const PagedAttentionParams& p, int64_t s) {
  const int64_t begin = p.cu_seqlens[s], n = p.cu_seqlens[s + 1] - begin;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < p.num_kv_heads; ++h) {
      const int64_t src = ((begin + i) * p.num_kv_heads + h) * p.head_dim;
      const int64_t dst = CacheOffset(p, s, p.start_pos[s] + i, h);
      std::memcpy(p.k_cache + dst, p.k + src, sizeof(float) * p.head_dim);
      std::memcpy(p.v_cache + dst, p.v + src, sizeof(float) * p.head_dim);
    }
  }
}

// Attention of the new tokens of sequence s for kv head h and its query heads (fp32
// accumulation). Reads the cache, which must already hold the new tokens; resolves the cache
// offset of every position once.
struct Scratch {
  std::vector<int64_t> offsets;
  std::vector<float> probs, acc;
};

// Dot products and acc += prob * v over head_dim, portable (Dot vectorises for the baseline ISA).
struct PortableOps {
  static float Dot(const float* a, const float* b, int64_t n) { return cpu::Dot(a, b, n); }
  static void Axpy(float* acc, float a, const float* v, int64_t n) {
    for (int64_t d = 0; d < n; ++d) acc[d] += a * v[d];
  }
};

#if defined(__x86_64__) || defined(__i386__)
// The same with 8-lane AVX2 FMAs (head_dim tail in scalar code).
struct Avx2Ops {
  __attribute__((target("avx2,fma"))) static float Dot(const float* a, const float* b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float sum = _mm_cvtss_f32(s);
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
  }
  __attribute__((target("avx2,fma"))) static void Axpy(float* acc, float a, const float* v,
                                                       int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t d = 0;
    for (; d + 8 <= n; d += 8) {
      _mm256_storeu_ps(acc + d,
                       _mm256_fmadd_ps(av, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
    }
    for (; d < n; ++d) acc[d] += a * v[d];
  }
};
#endif

template <typename Ops>
inline void AttendKvHeadWith(const PagedAttentionParams& p, int64_t s, int64_t h, Scratch& w) {
  const int64_t Dh = p.head_dim;
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const int64_t begin = p.cu_seqlens[s], n = p.cu_seqlens[s + 1] - begin;
  const int64_t total = p.start_pos[s] + n;
  w.offsets.resize(total);
  w.probs.resize(total);
  w.acc.resize(Dh);
  for (int64_t u = 0; u < total; ++u) w.offsets[u] = CacheOffset(p, s, u, h);
  float* acc = w.acc.data();
  float* probs = w.probs.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = p.start_pos[s] + i;
    for (int64_t qh = h * group; qh < (h + 1) * group; ++qh) {
      const float* q = p.q + ((begin + i) * p.num_q_heads + qh) * Dh;
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t u = 0; u <= pos; ++u) {
        probs[u] = Ops::Dot(q, p.k_cache + w.offsets[u], Dh) * p.scale;
        max_score = std::max(max_score, probs[u]);
      }
      float sum = 0.0f;
      for (int64_t u = 0; u <= pos; ++u) {
        probs[u] = std::exp(probs[u] - max_score);
        sum += probs[u];
      }
      const float inv = 1.0f / sum;
      std::fill(acc, acc + Dh, 0.0f);
      for (int64_t u = 0; u <= pos; ++u) {
        float prob = probs[u] * inv;
        if (p.bf16_probs) prob = core::RoundToBf16(prob);
        Ops::Axpy(acc, prob, p.v_cache + w.offsets[u], Dh);
      }
      std::memcpy(p.out + ((begin + i) * p.num_q_heads + qh) * Dh, acc, sizeof(float) * Dh);
    }
  }
}

void AttendKvHeadPortable(const PagedAttentionParams& p, int64_t s, int64_t h, Scratch& w) {
  AttendKvHeadWith<PortableOps>(p, s, h, w);
}

#if defined(__x86_64__) || defined(__i386__)
// flatten: the template body and Avx2Ops inline here, compiled for AVX2+FMA.
__attribute__((target("avx2,fma"), flatten)) void AttendKvHeadAvx2(const PagedAttentionParams& p,
                                                                   int64_t s, int64_t h,
                                                                   Scratch& w) {
  AttendKvHeadWith<Avx2Ops>(p, s, h, w);
}
#endif

}  // namespace

void PagedAttention(const PagedAttentionParams& p) {
  CheckParams(p);
  for (int64_t s = 0; s < p.num_seqs; ++s) WriteCache(p, s);
  const int64_t Dh = p.head_dim;
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  std::vector<double> scores, acc(Dh);
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const int64_t begin = p.cu_seqlens[s], n = p.cu_seqlens[s + 1] - begin;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = p.start_pos[s] + i;
      scores.resize(pos + 1);
      for (int64_t qh = 0; qh < p.num_q_heads; ++qh) {
        const int64_t h = qh / group;
        const float* q = p.q + ((begin + i) * p.num_q_heads + qh) * Dh;
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t u = 0; u <= pos; ++u) {
          const float* k = p.k_cache + CacheOffset(p, s, u, h);
          double dot = 0.0;
          for (int64_t d = 0; d < Dh; ++d) dot += static_cast<double>(q[d]) * k[d];
          scores[u] = static_cast<float>(dot) * p.scale;
          max_score = std::max(max_score, scores[u]);
        }
        double sum = 0.0;
        for (int64_t u = 0; u <= pos; ++u) {
          scores[u] = std::exp(scores[u] - max_score);
          sum += scores[u];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t u = 0; u <= pos; ++u) {
          float prob = static_cast<float>(scores[u] / sum);
          if (p.bf16_probs) prob = core::RoundToBf16(prob);
          const float* v = p.v_cache + CacheOffset(p, s, u, h);
          for (int64_t d = 0; d < Dh; ++d) acc[d] += static_cast<double>(prob) * v[d];
        }
        float* out = p.out + ((begin + i) * p.num_q_heads + qh) * Dh;
        for (int64_t d = 0; d < Dh; ++d) out[d] = static_cast<float>(acc[d]);
      }
    }
  }
}

void PagedAttentionFast(const PagedAttentionParams& p) {
  internal::PagedAttentionFastWithIsa(p, BestCpuIsa());
}

namespace internal {

void PagedAttentionFastWithIsa(const PagedAttentionParams& p, CpuIsa isa) {
  CheckParams(p);
  TANDEM_CHECK(CpuIsaSupported(isa)) << "CPU ISA " << static_cast<int>(isa) << " unsupported";
  void (*attend)(const PagedAttentionParams&, int64_t, int64_t, Scratch&) = AttendKvHeadPortable;
#if defined(__x86_64__) || defined(__i386__)
  if (isa == CpuIsa::kAvx2Fma) attend = AttendKvHeadAvx2;
#endif
  core::ThreadPool& pool = core::ThreadPool::Default();
  pool.ParallelFor(p.num_seqs, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) WriteCache(p, s);
  });
  pool.ParallelFor(p.num_seqs * p.num_kv_heads, [&](int64_t begin, int64_t end) {
    Scratch scratch;
    for (int64_t task = begin; task < end; ++task) {
      attend(p, task / p.num_kv_heads, task % p.num_kv_heads, scratch);
    }
  });
}

}  // namespace internal

}  // namespace tandem::kernels::cpu
