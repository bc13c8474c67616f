// Device discovery and plain memory helpers for the CUDA backend (no CUDA types in this header).
//
// All functions return errors as values; none aborts when no GPU or driver is present (here
// cudaGetDeviceCount fails with "CUDA driver version is insufficient", which DeviceCount reports).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::kernels::cuda {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0;
  int minor = 0;
  int multiprocessors = 0;
  int64_t global_memory_bytes = 0;
  int64_t l2_bytes = 0;
  int64_t max_shared_per_block_optin = 0;
};

// Number of usable devices; an error (with the driver's message) when the runtime cannot start.
absl::StatusOr<int> DeviceCount();
absl::StatusOr<DeviceInfo> GetDeviceInfo(int ordinal);
// Makes `ordinal` the calling thread's current device (cudaSetDevice).
absl::Status SetDevice(int ordinal);

// Thin, checked wrappers used by tests, benchmarks and the backend.
absl::StatusOr<void*> Malloc(size_t bytes);
absl::Status Free(void* ptr);
absl::Status CopyToDevice(void* dst, const void* src, size_t bytes, void* stream = nullptr);
absl::Status CopyToHost(void* dst, const void* src, size_t bytes, void* stream = nullptr);
// Sets every byte of [ptr, ptr + bytes) to `byte` (0xFF makes float and bf16 NaN: poison).
absl::Status Memset(void* ptr, int byte, size_t bytes, void* stream = nullptr);
absl::Status Synchronize(void* stream = nullptr);
// Enqueue-only copies (no synchronisation; the model backend syncs once per step). `host` should
// be pinned (MallocHost) for the copy to be truly asynchronous.
absl::Status CopyToDeviceAsync(void* dst, const void* src, size_t bytes, void* stream);
absl::Status CopyToHostAsync(void* dst, const void* src, size_t bytes, void* stream);
// Page-locked host memory (cudaMallocHost / cudaFreeHost).
absl::StatusOr<void*> MallocHost(size_t bytes);
absl::Status FreeHost(void* ptr);
absl::StatusOr<void*> CreateStream();
absl::Status DestroyStream(void* stream);

}  // namespace tandem::kernels::cuda
