#include "kernels/cuda/common.cuh"
#include "kernels/cuda/device.h"

namespace tandem::kernels::cuda {

using internal::AsStream;
using internal::CudaError;

absl::StatusOr<int> DeviceCount() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a failed runtime start
    return absl::UnavailableError(absl::StrCat("cudaGetDeviceCount: ", cudaGetErrorString(err)));
  }
  return count;
}

absl::StatusOr<DeviceInfo> GetDeviceInfo(int ordinal) {
  cudaDeviceProp prop{};
  const absl::Status st =
      CudaError(cudaGetDeviceProperties(&prop, ordinal), "cudaGetDeviceProperties");
  if (!st.ok()) return st;
  DeviceInfo info;
  info.ordinal = ordinal;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.global_memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  info.l2_bytes = prop.l2CacheSize;
  info.max_shared_per_block_optin = static_cast<int64_t>(prop.sharedMemPerBlockOptin);
  return info;
}

absl::Status SetDevice(int ordinal) { return CudaError(cudaSetDevice(ordinal), "cudaSetDevice"); }

absl::StatusOr<void*> Malloc(size_t bytes) {
  void* ptr = nullptr;
  const absl::Status st = CudaError(cudaMalloc(&ptr, bytes == 0 ? 1 : bytes), "cudaMalloc");
  if (!st.ok()) return st;
  return ptr;
}

absl::Status Free(void* ptr) { return CudaError(cudaFree(ptr), "cudaFree"); }

absl::Status CopyToDevice(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CudaError(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, AsStream(stream)), "H2D copy"));
  return CudaError(cudaStreamSynchronize(AsStream(stream)), "H2D copy sync");
}

absl::Status CopyToHost(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CudaError(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, AsStream(stream)), "D2H copy"));
  return CudaError(cudaStreamSynchronize(AsStream(stream)), "D2H copy sync");
}

absl::Status Memset(void* ptr, int byte, size_t bytes, void* stream) {
  if (bytes == 0) return absl::OkStatus();
  return CudaError(cudaMemsetAsync(ptr, byte, bytes, AsStream(stream)), "cudaMemsetAsync");
}

absl::Status Synchronize(void* stream) {
  return CudaError(cudaStreamSynchronize(AsStream(stream)), "cudaStreamSynchronize");
}

absl::Status CopyToDeviceAsync(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return absl::OkStatus();
  return CudaError(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, AsStream(stream)),
                   "async H2D copy");
}

absl::Status CopyToHostAsync(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return absl::OkStatus();
  return CudaError(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, AsStream(stream)),
                   "async D2H copy");
}

absl::StatusOr<void*> MallocHost(size_t bytes) {
  void* ptr = nullptr;
  const absl::Status st = CudaError(cudaMallocHost(&ptr, bytes == 0 ? 1 : bytes), "cudaMallocHost");
  if (!st.ok()) return st;
  return ptr;
}

absl::Status FreeHost(void* ptr) { return CudaError(cudaFreeHost(ptr), "cudaFreeHost"); }

absl::StatusOr<void*> CreateStream() {
  cudaStream_t s = nullptr;
  const absl::Status st =
      CudaError(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  if (!st.ok()) return st;
  return static_cast<void*>(s);
}

absl::Status DestroyStream(void* stream) {
  return CudaError(cudaStreamDestroy(AsStream(stream)), "cudaStreamDestroy");
}

}  // namespace tandem::kernels::cuda
