// RMSNorm fused with the residual add, and the Mamba-2 gated grouped RMSNorm. One block per row
// (per (row, group) for the gated form); fp32 sums of squares.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

template <typename T>
__global__ void AddRmsNormKernel(RmsNormParams<T> p) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const T* x = p.x + t * p.hidden;
  T* res = p.residual ? p.residual + t * p.hidden : nullptr;
  T* out = p.out + t * p.hidden;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < p.hidden; c += blockDim.x) {
    float v = Load(x + c);
    if (res) {
      v = RoundTo<T>(Load(res + c) + v);
      Store(res + c, v);
    }
    ss += v * v;
  }
  const float total = BlockSum(ss, scratch);
  const float inv = rsqrtf(total / static_cast<float>(p.hidden) + p.eps);
  for (int64_t c = threadIdx.x; c < p.hidden; c += blockDim.x) {
    const float v = res ? Load(res + c) : Load(x + c);
    Store(out + c, Load(p.weight + c) * (v * inv));
  }
}

template <typename T>
__global__ void GatedRmsNormKernel(GatedRmsNormParams<T> p, int64_t y_stride, int64_t z_stride) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const int64_t c0 = blockIdx.y * p.group_size;
  const T* y = p.y + t * y_stride + c0;
  const T* z = p.z + t * z_stride + c0;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < p.group_size; c += blockDim.x) {
    const float u = Load(y + c) * SiluF(Load(z + c));
    ss += u * u;
  }
  const float total = BlockSum(ss, scratch);
  const float inv = rsqrtf(total / static_cast<float>(p.group_size) + p.eps);
  T* out = p.out + t * p.dim + c0;
  for (int64_t c = threadIdx.x; c < p.group_size; c += blockDim.x) {
    const float u = Load(y + c) * SiluF(Load(z + c));
    Store(out + c, (u * inv) * Load(p.weight + c0 + c));
  }
}

}  // namespace

template <typename T>
absl::Status RmsNorm(const RmsNormParams<T>& p, void* stream) {
  if (p.num_tokens < 0 || p.hidden <= 0 || !(p.eps >= 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("RmsNorm: num_tokens=", p.num_tokens, " hidden=", p.hidden, " eps=", p.eps));
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  const int threads = static_cast<int>(RowThreads(p.hidden, 8));
  AddRmsNormKernel<T><<<static_cast<unsigned>(p.num_tokens), threads, 0, AsStream(stream)>>>(p);
  return LastLaunch("RmsNorm");
}
template absl::Status RmsNorm<float>(const RmsNormParams<float>&, void*);
template absl::Status RmsNorm<Bf16>(const RmsNormParams<Bf16>&, void*);

template <typename T>
absl::Status GatedRmsNorm(const GatedRmsNormParams<T>& p, void* stream) {
  const int64_t y_stride = p.y_stride ? p.y_stride : p.dim;
  const int64_t z_stride = p.z_stride ? p.z_stride : p.dim;
  if (p.num_tokens < 0 || p.dim <= 0 || p.group_size <= 0 || p.dim % p.group_size != 0 ||
      y_stride < p.dim || z_stride < p.dim || !(p.eps >= 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("GatedRmsNorm: num_tokens=", p.num_tokens,
                                                   " dim=", p.dim, " group_size=", p.group_size,
                                                   " y_stride=", y_stride, " z_stride=", z_stride));
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.dim / p.group_size));
  const int threads = static_cast<int>(RowThreads(p.group_size, 4));
  GatedRmsNormKernel<T><<<grid, threads, 0, AsStream(stream)>>>(p, y_stride, z_stride);
  return LastLaunch("GatedRmsNorm");
}
template absl::Status GatedRmsNorm<float>(const GatedRmsNormParams<float>&, void*);
template absl::Status GatedRmsNorm<Bf16>(const GatedRmsNormParams<Bf16>&, void*);

}  // namespace tandem::kernels::cuda
