// Linear layer without bias: y = x W^T with W stored row-major [out, in] (Hugging Face layout).
//
// Linear is the plain reference (triple loop, double accumulation: its result is the correctly
// rounded fp32 of the exact dot product up to double rounding, so it doubles as an oracle).
// LinearFast accumulates in fp32 and so differs from Linear by fp32 rounding (a few ulps of the
// row's |x|.|w| times ~sqrt(in_features)). It has two paths, both splitting the output rows
// over core::ThreadPool::Default():
// - num_tokens <= 12 (decode): a batched GEMV that streams each weight row once and dots it with
//   every token in registers (AVX2+FMA where the CPU has it, chosen at run time, else portable
//   loops; kernels/cpu/linear_internal.h). TANDEM_LINEAR_GEMV=0 in the environment turns it off
//   (for before/after benchmarks).
// - otherwise: OpenBLAS cblas_sgemm on column slices of W. On first use it sets OpenBLAS to one
//   thread for the whole process (the kernels library owns BLAS threading, so OpenBLAS's spinning
//   workers never compete with the pool).
// Both are thread-safe for distinct outputs (the GEMV kernel itself allocates nothing); y must
// not alias x or w. Do not call LinearFast from inside a ParallelFor of the default pool.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

struct LinearParams {
  const float* x = nullptr;  // [num_tokens, in_features]
  const float* w = nullptr;  // [out_features, in_features]
  float* y = nullptr;        // [num_tokens, out_features]
  int64_t num_tokens = 0;
  int64_t in_features = 0;
  int64_t out_features = 0;
};

void Linear(const LinearParams& p);
void LinearFast(const LinearParams& p);

}  // namespace tandem::kernels::cpu
