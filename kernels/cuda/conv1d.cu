// Causal depthwise conv1d + SiLU (varlen prefill) and its single-token update, conv state by slot.
// Prefill: one thread per (token, channel) reads the window from x or the slot's old state; a
// second kernel then writes each sequence's new state (so no thread reads a state row another
// thread already replaced).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

constexpr int kMaxKernel = 8;
constexpr int kThreads = 128;

// Sequence holding packed token t: the s with cu[s] <= t < cu[s + 1] (binary search).
__device__ __forceinline__ int64_t SeqOf(const int32_t* cu, int64_t num_seqs, int64_t t) {
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
__global__ void ConvPrefillKernel(CausalConv1dParams<T> p, int64_t x_stride, int64_t slot_stride) {
  const int64_t c = blockIdx.y * int64_t{blockDim.x} + threadIdx.x;
  const int64_t t = blockIdx.x;
  if (c >= p.channels) return;
  const int64_t s = SeqOf(p.cu_seqlens, p.num_seqs, t);
  const int64_t start = p.cu_seqlens[s];
  const int64_t i = t - start;
  const bool init = p.has_initial_state && p.has_initial_state[s];
  const T* state = p.conv_state + p.slots[s] * slot_stride + c * (p.kernel - 1);
  float acc = p.bias ? Load(p.bias + c) : 0.0f;
  for (int64_t k = 0; k < p.kernel; ++k) {
    const int64_t j = i - (p.kernel - 1) + k;  // position in the sequence
    float v;
    if (j >= 0) {
      v = Load(p.x + (start + j) * x_stride + c);
    } else {
      v = init ? Load(state + (p.kernel - 1) + j) : 0.0f;
    }
    acc += Load(p.weight + c * p.kernel + k) * v;
  }
  Store(p.out + t * p.channels + c, SiluF(acc));
}

template <typename T>
__global__ void ConvStateKernel(CausalConv1dParams<T> p, int64_t x_stride, int64_t slot_stride) {
  const int64_t c = blockIdx.y * int64_t{blockDim.x} + threadIdx.x;
  const int64_t s = blockIdx.x;
  if (c >= p.channels) return;
  const int64_t start = p.cu_seqlens[s], len = p.cu_seqlens[s + 1] - start;
  const bool init = p.has_initial_state && p.has_initial_state[s];
  T* state = p.conv_state + p.slots[s] * slot_stride + c * (p.kernel - 1);
  // Register arrays indexed by unrolled constants only (a runtime index would go to local memory).
  float rows[kMaxKernel];
#pragma unroll
  for (int r = 0; r < kMaxKernel; ++r) {
    rows[r] = 0.0f;
    if (r >= p.kernel - 1) continue;
    const int64_t pos = len - (p.kernel - 1) + r;
    if (pos >= 0) {
      rows[r] = Load(p.x + (start + pos) * x_stride + c);
    } else if (init) {
      rows[r] = Load(state + (p.kernel - 1) + pos);
    }
  }
#pragma unroll
  for (int r = 0; r < kMaxKernel; ++r) {
    if (r < p.kernel - 1) Store(state + r, rows[r]);
  }
}

template <typename T>
__global__ void ConvUpdateKernel(CausalConv1dUpdateParams<T> p, int64_t x_stride,
                                 int64_t slot_stride) {
  const int64_t c = blockIdx.y * int64_t{blockDim.x} + threadIdx.x;
  const int64_t b = blockIdx.x;
  if (c >= p.channels) return;
  T* state = p.conv_state + p.slots[b] * slot_stride + c * (p.kernel - 1);
  float win[kMaxKernel + 1];  // unrolled constant indices only (no local memory)
  const float xv = Load(p.x + b * x_stride + c);
#pragma unroll
  for (int k = 0; k < kMaxKernel; ++k) {
    win[k] = k < p.kernel - 1 ? Load(state + k) : (k == p.kernel - 1 ? xv : 0.0f);
  }
  win[kMaxKernel] = 0.0f;
  float acc = p.bias ? Load(p.bias + c) : 0.0f;
#pragma unroll
  for (int k = 0; k < kMaxKernel; ++k) {
    if (k < p.kernel) acc += Load(p.weight + c * p.kernel + k) * win[k];
  }
#pragma unroll
  for (int k = 0; k < kMaxKernel; ++k) {
    if (k < p.kernel - 1) Store(state + k, win[k + 1]);
  }
  Store(p.out + b * p.channels + c, SiluF(acc));
}

absl::Status CheckConv(const char* what, int64_t seqs, int64_t channels, int64_t kernel,
                       int64_t num_slots, int64_t x_stride, int64_t slot_stride) {
  if (seqs < 0 || channels <= 0 || kernel < 1 || kernel > kMaxKernel || num_slots < 0 ||
      x_stride < channels || slot_stride < channels * (kernel - 1) ||
      channels > 65535 * int64_t{kThreads}) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": sequences=", seqs, " channels=", channels, " kernel=", kernel, " (1..", kMaxKernel,
        ") num_slots=", num_slots, " x_stride=", x_stride, " slot_stride=", slot_stride));
  }
  return absl::OkStatus();
}

}  // namespace

template <typename T>
absl::Status CausalConv1d(const CausalConv1dParams<T>& p, void* stream) {
  const int64_t x_stride = p.x_stride ? p.x_stride : p.channels;
  const int64_t slot_stride = p.slot_stride ? p.slot_stride : p.channels * (p.kernel - 1);
  RETURN_IF_ERROR(CheckConv("CausalConv1d", p.num_seqs, p.channels, p.kernel, p.num_slots, x_stride,
                            slot_stride));
  if (p.num_tokens < 0 || p.num_tokens > 0x7fffffff) {
    return absl::InvalidArgumentError(absl::StrCat("CausalConv1d: num_tokens=", p.num_tokens));
  }
  if (p.num_seqs == 0) return absl::OkStatus();
  const unsigned cx = static_cast<unsigned>(Blocks(p.channels, kThreads));
  if (p.num_tokens > 0) {
    ConvPrefillKernel<T>
        <<<dim3(static_cast<unsigned>(p.num_tokens), cx), kThreads, 0, AsStream(stream)>>>(
            p, x_stride, slot_stride);
    RETURN_IF_ERROR(LastLaunch("CausalConv1d"));
  }
  if (p.kernel > 1) {
    ConvStateKernel<T>
        <<<dim3(static_cast<unsigned>(p.num_seqs), cx), kThreads, 0, AsStream(stream)>>>(
            p, x_stride, slot_stride);
    RETURN_IF_ERROR(LastLaunch("CausalConv1d state"));
  }
  return absl::OkStatus();
}
template absl::Status CausalConv1d<float>(const CausalConv1dParams<float>&, void*);
template absl::Status CausalConv1d<Bf16>(const CausalConv1dParams<Bf16>&, void*);

template <typename T>
absl::Status CausalConv1dUpdate(const CausalConv1dUpdateParams<T>& p, void* stream) {
  const int64_t x_stride = p.x_stride ? p.x_stride : p.channels;
  const int64_t slot_stride = p.slot_stride ? p.slot_stride : p.channels * (p.kernel - 1);
  RETURN_IF_ERROR(CheckConv("CausalConv1dUpdate", p.batch, p.channels, p.kernel, p.num_slots,
                            x_stride, slot_stride));
  if (p.batch == 0) return absl::OkStatus();
  const unsigned cx = static_cast<unsigned>(Blocks(p.channels, kThreads));
  ConvUpdateKernel<T><<<dim3(static_cast<unsigned>(p.batch), cx), kThreads, 0, AsStream(stream)>>>(
      p, x_stride, slot_stride);
  return LastLaunch("CausalConv1dUpdate");
}
template absl::Status CausalConv1dUpdate<float>(const CausalConv1dUpdateParams<float>&, void*);
template absl::Status CausalConv1dUpdate<Bf16>(const CausalConv1dUpdateParams<Bf16>&, void*);

}  // namespace tandem::kernels::cuda
