// Internal helpers of the CUDA kernels (included by .cu files only).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "kernels/cuda/launch_plan.h"
#include "kernels/cuda/types.h"

namespace tandem::kernels::cuda::internal {

inline cudaStream_t AsStream(void* stream) { return static_cast<cudaStream_t>(stream); }

inline absl::Status CudaError(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")"));
}

// The launch error of the kernel just enqueued (configuration errors, not asynchronous faults).
inline absl::Status LastLaunch(const char* what) { return CudaError(cudaGetLastError(), what); }

// Element loads/stores: fp32 math, bf16 rounded (nearest even) once at the store.
__device__ __forceinline__ float Load(const float* p) { return *p; }
__device__ __forceinline__ float Load(const Bf16* p) {
  return __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(p));
}
__device__ __forceinline__ void Store(float* p, float v) { *p = v; }
__device__ __forceinline__ void Store(Bf16* p, float v) {
  *reinterpret_cast<__nv_bfloat16*>(p) = __float2bfloat16_rn(v);
}
// The value a store would keep (used where the CPU rounds an intermediate to the model dtype).
template <typename T>
__device__ __forceinline__ float RoundTo(float v) {
  if constexpr (sizeof(T) == 2) {
    return __bfloat162float(__float2bfloat16_rn(v));
  } else {
    return v;
  }
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum of one value per thread; every thread gets the total. `scratch` holds >= 32
// floats. blockDim.x must be a multiple of 32.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by an earlier call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < warps ? scratch[lane] : 0.0f;
  return WarpSum(total);
}

__device__ __forceinline__ float SiluF(float v) { return v / (1.0f + __expf(-v)); }
__device__ __forceinline__ float SoftplusF(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

inline int64_t Blocks(int64_t n, int64_t threads) { return (n + threads - 1) / threads; }

}  // namespace tandem::kernels::cuda::internal
