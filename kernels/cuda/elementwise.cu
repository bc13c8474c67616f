// relu^2 and dtype conversions.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

template <typename T>
__global__ void ReluSquaredKernel(T* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = fmaxf(Load(x + i), 0.0f);
    Store(x + i, v * v);
  }
}

__global__ void F32ToBf16Kernel(const float* src, Bf16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    Store(dst + i, src[i]);
  }
}

__global__ void Bf16ToF32Kernel(const Bf16* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = Load(src + i);
  }
}

constexpr int kThreads = 256;
int GridFor(int64_t n) { return static_cast<int>(std::min<int64_t>(Blocks(n, kThreads), 65535)); }

absl::Status CheckN(int64_t n, const char* what) {
  if (n < 0) return absl::InvalidArgumentError(absl::StrCat(what, ": n = ", n));
  return absl::OkStatus();
}

}  // namespace

template <typename T>
absl::Status ReluSquared(T* x, int64_t n, void* stream) {
  RETURN_IF_ERROR(CheckN(n, "ReluSquared"));
  if (n == 0) return absl::OkStatus();
  ReluSquaredKernel<<<GridFor(n), kThreads, 0, AsStream(stream)>>>(x, n);
  return LastLaunch("ReluSquared");
}
template absl::Status ReluSquared<float>(float*, int64_t, void*);
template absl::Status ReluSquared<Bf16>(Bf16*, int64_t, void*);

absl::Status ConvertF32ToBf16(const float* src, Bf16* dst, int64_t n, void* stream) {
  RETURN_IF_ERROR(CheckN(n, "ConvertF32ToBf16"));
  if (n == 0) return absl::OkStatus();
  F32ToBf16Kernel<<<GridFor(n), kThreads, 0, AsStream(stream)>>>(src, dst, n);
  return LastLaunch("ConvertF32ToBf16");
}

absl::Status ConvertBf16ToF32(const Bf16* src, float* dst, int64_t n, void* stream) {
  RETURN_IF_ERROR(CheckN(n, "ConvertBf16ToF32"));
  if (n == 0) return absl::OkStatus();
  Bf16ToF32Kernel<<<GridFor(n), kThreads, 0, AsStream(stream)>>>(src, dst, n);
  return LastLaunch("ConvertBf16ToF32");
}

}  // namespace tandem::kernels::cuda
