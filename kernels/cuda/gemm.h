// GEMM through cuBLASLt: y[num_tokens, out] = x[num_tokens, in] * W[out, in]^T (the contract of
// kernels/cpu/linear.h), bf16 in / fp32 accumulate / bf16 out, or fp32 throughout.
//
// A GemmHandle owns the cuBLASLt handle and a device workspace, created once (not per step), and
// caches the descriptors and heuristic algorithm of each (M, N, K, dtype) it has seen, so repeated
// shapes (every decode step) cost one cublasLtMatmul call. Not thread-safe: one handle per
// stream/thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/cuda/types.h"

namespace tandem::kernels::cuda {

template <typename T>
struct LinearParams {
  const T* x = nullptr;  // [num_tokens, in_features]
  const T* w = nullptr;  // [out_features, in_features]
  T* y = nullptr;        // [num_tokens, out_features]
  int64_t num_tokens = 0;
  int64_t in_features = 0;
  int64_t out_features = 0;
};

class GemmHandle {
 public:
  static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;
  static absl::StatusOr<std::unique_ptr<GemmHandle>> Create(
      size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~GemmHandle();
  GemmHandle(const GemmHandle&) = delete;
  GemmHandle& operator=(const GemmHandle&) = delete;

  template <typename T>
  absl::Status Linear(const LinearParams<T>& p, void* stream);

 private:
  struct Plan;   // cuBLASLt descriptors + algorithm of one shape (gemm.cu)
  struct Cache;  // shape -> Plan
  GemmHandle();
  std::unique_ptr<Cache> cache_;
  void* lt_ = nullptr;         // cublasLtHandle_t
  void* workspace_ = nullptr;  // device memory
  size_t workspace_bytes_ = 0;
};

}  // namespace tandem::kernels::cuda
