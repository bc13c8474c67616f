// Batched sampling: penalties (three small kernels over each row's history), then one block per
// row for greedy / temperature / top-k / top-p / min-p / Gumbel-max (see sampling.h).
#include <cfloat>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/sampling.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;
using cpu::SamplingParams;
using cpu::TokenScore;

constexpr int kThreads = 1024;
constexpr int32_t kPromptBit = 1 << 30;
constexpr int32_t kDoneBit = 1 << 29;
constexpr int32_t kCountMask = kDoneBit - 1;

__device__ __forceinline__ uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The noise of kernels/cpu/sampling.cc GumbelNoise, bit for bit in the hash and the uniform.
__device__ __forceinline__ float Gumbel(uint64_t seed, int64_t position, int32_t token) {
  uint64_t h = SplitMix64(seed);
  h = SplitMix64(h ^ static_cast<uint64_t>(position));
  h = SplitMix64(h ^ static_cast<uint64_t>(static_cast<uint32_t>(token)));
  const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;
  return static_cast<float>(-log(-log(u)));
}

// Order-preserving map of floats to unsigned keys (larger float -> larger key).
__device__ __forceinline__ uint32_t Key(float v) {
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float FromKey(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

template <typename V, typename Op>
__device__ V BlockReduce(V v, V* scratch, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  V r = scratch[0];
  for (int w = 1; w < warps; ++w) r = op(r, scratch[w]);
  return r;
}

struct Pick {
  float score;
  int32_t token;
};
__device__ __forceinline__ Pick Better(Pick a, Pick b) {
  if (a.token < 0) return b;
  if (b.token < 0) return a;
  if (a.score != b.score) return a.score > b.score ? a : b;
  return a.token < b.token ? a : b;
}
__device__ Pick BlockBest(Pick v, Pick* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Pick other{__shfl_xor_sync(0xffffffffu, v.score, o), __shfl_xor_sync(0xffffffffu, v.token, o)};
    v = Better(v, other);
  }
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  Pick r = scratch[0];
  for (int w = 1; w < warps; ++w) r = Better(r, scratch[w]);
  return r;
}

__device__ __forceinline__ bool UsesPenalties(const SamplingParams& sp) {
  return sp.repetition_penalty != 1.0f || sp.presence_penalty != 0.0f ||
         sp.frequency_penalty != 0.0f;
}

// mode 0: zero the history entries; 1: count output tokens, flag prompt tokens; 2: apply once.
__global__ void PenaltyKernel(SampleBatchParams p, int mode) {
  const int64_t r = blockIdx.x;
  const SamplingParams sp = p.params[r];
  if (!UsesPenalties(sp)) return;
  int32_t* ws = p.workspace + r * p.vocab;
  float* logits = p.logits + r * p.vocab;
  for (int side = 0; side < 2; ++side) {
    const int32_t* off = side == 0 ? p.prompt_offsets : p.output_offsets;
    const int32_t* ids = side == 0 ? p.prompt_tokens : p.output_tokens;
    if (!off || !ids) continue;
    for (int64_t e = off[r] + threadIdx.x; e < off[r + 1]; e += blockDim.x) {
      const int64_t i = static_cast<int64_t>(ids[e]) - p.vocab_begin;
      if (i < 0 || i >= p.vocab) continue;
      if (mode == 0) {
        ws[i] = 0;
      } else if (mode == 1) {
        if (side == 0)
          atomicOr(ws + i, kPromptBit);
        else
          atomicAdd(ws + i, 1);
      } else {
        const int32_t old = atomicOr(ws + i, kDoneBit);
        if (old & kDoneBit) continue;  // another thread owns this id
        const int32_t count = old & kCountMask;
        float v = logits[i];
        if (sp.repetition_penalty != 1.0f) {
          v = v > 0.0f ? v / sp.repetition_penalty : v * sp.repetition_penalty;
        }
        if (count > 0) {
          v -= sp.presence_penalty + sp.frequency_penalty * static_cast<float>(count);
        }
        logits[i] = v;
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads) SampleKernel(SampleBatchParams p) {
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  __shared__ int32_t iscratch[32];
  __shared__ Pick pscratch[32];
  const int64_t r = blockIdx.x;
  const SamplingParams sp = p.params[r];
  float* L = p.logits + r * p.vocab;
  const int64_t V = p.vocab;
  const auto fmax_op = [](float a, float b) { return fmaxf(a, b); };
  const auto isum_op = [](int32_t a, int32_t b) { return a + b; };
  const auto dsum_op = [](double a, double b) { return a + b; };

  if (sp.temperature == 0.0f) {
    Pick best{0.0f, -1};
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      if (L[i] == -INFINITY) continue;
      best = Better(best, Pick{L[i], static_cast<int32_t>(p.vocab_begin + i)});
    }
    best = BlockBest(best, pscratch);
    if (threadIdx.x == 0) p.picks[r] = TokenScore{best.token, best.score};
    return;
  }
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) L[i] /= sp.temperature;
  __syncthreads();

  if (sp.top_k > 0 && V >= sp.top_k) {
    uint32_t prefix = 0;
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t cand = prefix | (1u << bit);
      int32_t cnt = 0;
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) cnt += Key(L[i]) >= cand;
      cnt = BlockReduce(cnt, iscratch, isum_op);
      if (cnt >= sp.top_k) prefix = cand;
    }
    const float thr = FromKey(prefix);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      if (L[i] < thr) L[i] = -INFINITY;
    }
    __syncthreads();
  }
  if (sp.top_p < 1.0f) {
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, L[i]);
    mx = BlockReduce(mx, fscratch, fmax_op);
    if (mx != -INFINITY) {
      double total = 0.0;
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        if (L[i] != -INFINITY) total += exp(static_cast<double>(L[i]) - mx);
      }
      total = BlockReduce(total, dscratch, dsum_op);
      const double need = static_cast<double>(sp.top_p) * total;
      uint32_t prefix = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const uint32_t cand = prefix | (1u << bit);
        double mass = 0.0;
        for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
          if (L[i] != -INFINITY && Key(L[i]) >= cand) mass += exp(static_cast<double>(L[i]) - mx);
        }
        mass = BlockReduce(mass, dscratch, dsum_op);
        if (mass >= need) prefix = cand;
      }
      const float thr = FromKey(prefix);
      __syncthreads();
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        if (L[i] < thr) L[i] = -INFINITY;
      }
      __syncthreads();
    }
  }
  if (sp.min_p > 0.0f) {
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, L[i]);
    mx = BlockReduce(mx, fscratch, fmax_op);
    if (mx != -INFINITY) {
      const double thr = static_cast<double>(mx) + log(static_cast<double>(sp.min_p));
      __syncthreads();
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
        if (L[i] < thr) L[i] = -INFINITY;
      }
      __syncthreads();
    }
  }
  Pick best{0.0f, -1};
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    if (L[i] == -INFINITY) continue;
    const int32_t token = static_cast<int32_t>(p.vocab_begin + i);
    best = Better(best, Pick{L[i] + Gumbel(sp.seed, sp.position, token), token});
  }
  best = BlockBest(best, pscratch);
  if (threadIdx.x == 0) p.picks[r] = TokenScore{best.token, best.score};
}

}  // namespace

size_t SamplingWorkspaceBytes(int64_t batch, int64_t vocab) {
  return static_cast<size_t>(batch) * static_cast<size_t>(vocab) * sizeof(int32_t);
}

absl::Status SampleBatch(const SampleBatchParams& p, void* stream) {
  if (p.batch < 0 || p.vocab <= 0 || p.vocab_begin < 0 || p.batch > 0x7fffffff ||
      p.vocab_begin + p.vocab > 0x7fffffff) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SampleBatch: batch=", p.batch, " vocab=", p.vocab, " vocab_begin=", p.vocab_begin));
  }
  if (p.any_penalties && p.workspace == nullptr) {
    return absl::InvalidArgumentError("SampleBatch: penalties need a workspace");
  }
  if (p.batch == 0) return absl::OkStatus();
  cudaStream_t st = AsStream(stream);
  const unsigned grid = static_cast<unsigned>(p.batch);
  if (p.any_penalties) {
    for (int mode = 0; mode < 3; ++mode) {
      PenaltyKernel<<<grid, 256, 0, st>>>(p, mode);
      RETURN_IF_ERROR(LastLaunch("SampleBatch penalties"));
    }
  }
  SampleKernel<<<grid, kThreads, 0, st>>>(p);
  return LastLaunch("SampleBatch");
}

}  // namespace tandem::kernels::cuda
