// Causal GQA attention over a paged KV cache: the new k/v are first written into their blocks,
// then either the decode kernel (one query token per sequence) or the flash-style prefill kernel.
//
// Prefill: one block per (query tile of 16 rows, q head, sequence); key/value tiles of 32 cached
// positions go through shared memory; each row keeps a running max m, sum l and accumulator
// (online softmax), rescaled by exp(m_old - m_new) per key tile.
// Decode: one block per (sequence, q head); its 4 warps take interleaved keys (split-K inside the
// block), each with its own online softmax, merged at the end; a lane holds head_dim / 32 dims.
// bf16_probs (probabilities rounded to bf16 before the weighted sum, as HF eager bf16) needs the
// final max and sum first: both kernels then make a first pass for (m, l) and a second for the sum.
#include <cfloat>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/device.h"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

constexpr int kMaxLaneDims = 8;  // head_dim <= 256

__device__ __forceinline__ int64_t SeqOfToken(const int32_t* cu, int64_t num_seqs, int64_t t) {
  int64_t lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (cu[mid] <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

template <typename T>
__device__ __forceinline__ int64_t CacheRow(const PagedAttentionParams<T>& p, int64_t s,
                                            int64_t pos, int64_t kv_head) {
  const int64_t block = p.block_tables[s * p.max_blocks_per_seq + pos / p.block_size];
  return ((block * p.block_size + pos % p.block_size) * p.num_kv_heads + kv_head) * p.head_dim;
}

template <typename T>
__global__ void WriteKvKernel(PagedAttentionParams<T> p) {
  const int64_t t = blockIdx.x;
  const int64_t s = SeqOfToken(p.cu_seqlens, p.num_seqs, t);
  const int64_t pos = p.start_pos[s] + (t - p.cu_seqlens[s]);
  const int64_t width = p.num_kv_heads * p.head_dim;
  for (int64_t e = threadIdx.x; e < width; e += blockDim.x) {
    const int64_t kh = e / p.head_dim, d = e % p.head_dim;
    const int64_t dst = CacheRow(p, s, pos, kh) + d;
    p.k_cache[dst] = p.k[t * width + e];
    p.v_cache[dst] = p.v[t * width + e];
  }
}

template <typename T, bool kTwoPass>
__global__ void __launch_bounds__(128) DecodeKernel(PagedAttentionParams<T> p) {
  extern __shared__ float smem[];
  const int64_t s = blockIdx.z, qh = blockIdx.y;
  const int64_t n = p.cu_seqlens[s + 1] - p.cu_seqlens[s];
  if (n <= 0) return;
  const int64_t t = p.cu_seqlens[s];
  const int64_t D = p.head_dim, kh = qh / (p.num_q_heads / p.num_kv_heads);
  const int64_t last = p.start_pos[s];  // attends over [0, last]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  constexpr int kWarps = 4;
  float* wacc = smem;             // [4][D]
  float* wm = wacc + kWarps * D;  // [4]
  float* wl = wm + kWarps;        // [4]

  float q[kMaxLaneDims];
#pragma unroll
  for (int i = 0; i < kMaxLaneDims; ++i) {
    const int64_t d = lane + 32 * i;
    q[i] = d < D ? Load(p.q + (t * p.num_q_heads + qh) * D + d) * p.scale : 0.0f;
  }
  auto score = [&](int64_t u) {
    const T* k = p.k_cache + CacheRow(p, s, u, kh);
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxLaneDims; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < D) dot += q[i] * Load(k + d);
    }
    return WarpSum(dot);
  };

  float m = -FLT_MAX, l = 0.0f;
  float acc[kMaxLaneDims];
#pragma unroll
  for (int i = 0; i < kMaxLaneDims; ++i) acc[i] = 0.0f;
  float M = 0.0f, L = 1.0f;
  if constexpr (kTwoPass) {
    for (int64_t u = warp; u <= last; u += kWarps) {
      const float sc = score(u);
      const float m_new = fmaxf(m, sc);
      l = l * expf(m - m_new) + expf(sc - m_new);
      m = m_new;
    }
    if (lane == 0) {
      wm[warp] = m;
      wl[warp] = l;
    }
    __syncthreads();
    M = -FLT_MAX;
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, wm[w]);
    L = 0.0f;
    for (int w = 0; w < kWarps; ++w) L += wl[w] * expf(wm[w] - M);
    __syncthreads();
  }
  for (int64_t u = warp; u <= last; u += kWarps) {
    const float sc = score(u);
    float w_u, alpha = 1.0f;
    if constexpr (kTwoPass) {
      w_u = RoundTo<Bf16>(expf(sc - M) / L);
    } else {
      const float m_new = fmaxf(m, sc);
      alpha = expf(m - m_new);
      w_u = expf(sc - m_new);
      l = l * alpha + w_u;
      m = m_new;
    }
    const T* v = p.v_cache + CacheRow(p, s, u, kh);
#pragma unroll
    for (int i = 0; i < kMaxLaneDims; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < D) acc[i] = acc[i] * alpha + w_u * Load(v + d);
    }
  }
#pragma unroll
  for (int i = 0; i < kMaxLaneDims; ++i) {
    const int64_t d = lane + 32 * i;
    if (d < D) wacc[warp * D + d] = acc[i];
  }
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    if constexpr (kTwoPass) {
      for (int w = 0; w < kWarps; ++w) o += wacc[w * D + d];
    } else {
      float mx = -FLT_MAX;
      for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, wm[w]);
      float den = 0.0f;
      for (int w = 0; w < kWarps; ++w) {
        const float f = wl[w] > 0.0f ? expf(wm[w] - mx) : 0.0f;
        o += f * wacc[w * D + d];
        den += f * wl[w];
      }
      o /= den;
    }
    Store(p.out + (t * p.num_q_heads + qh) * D + d, o);
  }
}

template <typename T, bool kTwoPass>
__global__ void __launch_bounds__(128)
    PrefillKernel(PagedAttentionParams<T> p, int q_tile, int k_tile) {
  extern __shared__ float smem[];
  const int64_t s = blockIdx.z, qh = blockIdx.y;
  const int64_t begin = p.cu_seqlens[s], n = p.cu_seqlens[s + 1] - begin;
  const int64_t row0 = int64_t{blockIdx.x} * q_tile;
  if (row0 >= n) return;
  const int rows = static_cast<int>(n - row0 < q_tile ? n - row0 : q_tile);
  const int D = static_cast<int>(p.head_dim), DP = D + 1;
  const int64_t kh = qh / (p.num_q_heads / p.num_kv_heads);
  const int64_t start = p.start_pos[s];
  const int64_t last = start + row0 + rows - 1;  // the largest position any row attends to
  float* qs = smem;                              // [q_tile][D]
  float* ks = qs + q_tile * D;                   // [k_tile][DP]
  float* vs = ks + k_tile * DP;                  // [k_tile][D]
  float* sc = vs + k_tile * D;                   // [q_tile][k_tile]
  float* acc = sc + q_tile * k_tile;             // [q_tile][D]
  float* rm = acc + q_tile * D;                  // [q_tile] running max
  float* rl = rm + q_tile;                       // [q_tile] running sum
  float* ra = rl + q_tile;                       // [q_tile] rescale of this tile
  const int tid = threadIdx.x, nt = blockDim.x;

  for (int idx = tid; idx < q_tile * D; idx += nt) {
    const int i = idx / D, d = idx % D;
    qs[idx] =
        i < rows ? Load(p.q + ((begin + row0 + i) * p.num_q_heads + qh) * D + d) * p.scale : 0.0f;
    acc[idx] = 0.0f;
  }
  for (int i = tid; i < q_tile; i += nt) {
    rm[i] = -FLT_MAX;
    rl[i] = 0.0f;
  }

  const int passes = kTwoPass ? 2 : 1;
  for (int pass = 0; pass < passes; ++pass) {
    const bool stats_only = kTwoPass && pass == 0;
    for (int64_t k0 = 0; k0 <= last; k0 += k_tile) {
      __syncthreads();
      for (int idx = tid; idx < k_tile * D; idx += nt) {
        const int j = idx / D, d = idx % D;
        const int64_t u = k0 + j;
        float kv = 0.0f, vv = 0.0f;
        if (u <= last) {
          const int64_t off = CacheRow(p, s, u, kh) + d;
          kv = Load(p.k_cache + off);
          if (!stats_only) vv = Load(p.v_cache + off);
        }
        ks[j * DP + d] = kv;
        vs[idx] = vv;
      }
      __syncthreads();
      for (int idx = tid; idx < q_tile * k_tile; idx += nt) {
        const int i = idx / k_tile, j = idx % k_tile;
        float v = -INFINITY;
        if (i < rows && k0 + j <= start + row0 + i) {
          v = 0.0f;
          const float* qi = qs + i * D;
          const float* kj = ks + j * DP;
          for (int d = 0; d < D; ++d) v += qi[d] * kj[d];
        }
        sc[idx] = v;
      }
      __syncthreads();
      for (int i = tid; i < q_tile; i += nt) {
        float* row = sc + i * k_tile;
        if (kTwoPass && !stats_only) {
          for (int j = 0; j < k_tile; ++j) {
            row[j] = row[j] == -INFINITY ? 0.0f : RoundTo<Bf16>(expf(row[j] - rm[i]) / rl[i]);
          }
          ra[i] = 1.0f;
        } else {
          float mx = rm[i];
          for (int j = 0; j < k_tile; ++j) mx = fmaxf(mx, row[j]);
          const float alpha = expf(rm[i] - mx);
          float sum = 0.0f;
          for (int j = 0; j < k_tile; ++j) {
            const float e = row[j] == -INFINITY ? 0.0f : expf(row[j] - mx);
            row[j] = e;
            sum += e;
          }
          rl[i] = rl[i] * alpha + sum;
          rm[i] = mx;
          ra[i] = alpha;
        }
      }
      __syncthreads();
      if (stats_only) continue;
      for (int idx = tid; idx < q_tile * D; idx += nt) {
        const int i = idx / D, d = idx % D;
        float a = acc[idx] * ra[i];
        const float* row = sc + i * k_tile;
        for (int j = 0; j < k_tile; ++j) a += row[j] * vs[j * D + d];
        acc[idx] = a;
      }
    }
  }
  __syncthreads();
  for (int idx = tid; idx < rows * D; idx += nt) {
    const int i = idx / D, d = idx % D;
    const float o = kTwoPass ? acc[idx] : acc[idx] / rl[i];
    Store(p.out + ((begin + row0 + i) * p.num_q_heads + qh) * D + d, o);
  }
}

template <typename Kernel>
absl::Status AllowShared(Kernel kernel, int64_t bytes) {
  return CudaError(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(bytes)),
                   "PagedAttention shared memory");
}

}  // namespace

template <typename T>
absl::Status PagedAttention(const PagedAttentionParams<T>& p, void* stream) {
  static const int64_t max_shared = [] {
    absl::StatusOr<DeviceInfo> info = GetDeviceInfo(0);
    // Without device information assume the build target's (sm_90) opt-in limit; launches fail
    // then.
    return info.ok() ? info->max_shared_per_block_optin : int64_t{227 << 10};
  }();
  ASSIGN_OR_RETURN(AttentionPlan plan, PlanAttention(p.num_seqs, p.num_q_heads, p.num_kv_heads,
                                                     p.head_dim, p.max_query_len, max_shared));
  if (p.block_size <= 0 || p.num_blocks < 0 || p.max_blocks_per_seq < 0 || p.num_tokens < 0 ||
      p.num_tokens > 0x7fffffff || plan.grid_x > 0x7fffffff || plan.grid_y > 65535 ||
      plan.grid_z > 65535 || !(p.scale > 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: block_size=", p.block_size, " num_blocks=", p.num_blocks,
                     " max_blocks_per_seq=", p.max_blocks_per_seq, " num_tokens=", p.num_tokens,
                     " num_seqs=", p.num_seqs, " scale=", p.scale));
  }
  if (p.num_tokens == 0 || p.num_seqs == 0) return absl::OkStatus();
  cudaStream_t st = AsStream(stream);
  const int kv_threads = static_cast<int>(RowThreads(p.num_kv_heads * p.head_dim, 2));
  WriteKvKernel<T><<<static_cast<unsigned>(p.num_tokens), kv_threads, 0, st>>>(p);
  RETURN_IF_ERROR(LastLaunch("PagedAttention KV write"));
  const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.grid_y),
                  static_cast<unsigned>(plan.grid_z));
  const size_t shared = static_cast<size_t>(plan.shared_bytes);
  if (plan.decode) {
    if (p.bf16_probs) {
      DecodeKernel<T, true><<<grid, 128, shared, st>>>(p);
    } else {
      DecodeKernel<T, false><<<grid, 128, shared, st>>>(p);
    }
    return LastLaunch("PagedAttention decode");
  }
  const int qt = static_cast<int>(plan.q_tile), kt = static_cast<int>(plan.k_tile);
  if (p.bf16_probs) {
    RETURN_IF_ERROR(AllowShared(PrefillKernel<T, true>, plan.shared_bytes));
    PrefillKernel<T, true><<<grid, 128, shared, st>>>(p, qt, kt);
  } else {
    RETURN_IF_ERROR(AllowShared(PrefillKernel<T, false>, plan.shared_bytes));
    PrefillKernel<T, false><<<grid, 128, shared, st>>>(p, qt, kt);
  }
  return LastLaunch("PagedAttention prefill");
}
template absl::Status PagedAttention<float>(const PagedAttentionParams<float>&, void*);
template absl::Status PagedAttention<Bf16>(const PagedAttentionParams<Bf16>&, void*);

}  // namespace tandem::kernels::cuda
