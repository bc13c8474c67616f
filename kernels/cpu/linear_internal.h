// Internals of LinearFast (kernels/cpu/linear.h), exposed for tests and benchmarks only.
//
// The batched GEMV path: for a few tokens, each weight row is streamed once (in blocks of 8 rows)
// and dotted with every token's input row in registers, f32 FMA accumulation. It replaces
// OpenBLAS at small num_tokens, where sgemm re-packs every weight block for every call. Two
// implementations of the same loops: AVX2+FMA (compiled with a target attribute, chosen at run
// time when the CPU has both) and a portable one (plain loops the compiler vectorises for the
// baseline ISA), so one binary runs on any x86-64 and the code builds on any architecture.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/linear.h"

namespace tandem::kernels::cpu::internal {

// The largest num_tokens that LinearFast sends to the GEMV path (measured crossover against
// OpenBLAS on the development machine; docs/benchmarks.md). TANDEM_LINEAR_GEMV=0 in the
// environment (read once per process) turns the GEMV path off, for before/after benchmarks.
inline constexpr int64_t kGemvMaxTokens = 12;
bool GemvEnabled();

// y[:, begin:end] = x W[begin:end, :]^T for all p.num_tokens tokens on the calling thread, with
// `isa` (which must be supported). 0 <= begin <= end <= out_features. Allocates nothing.
void GemvColumns(const LinearParams& p, int64_t begin, int64_t end, CpuIsa isa);

// The whole product through the GEMV path, output rows split over core::ThreadPool::Default()
// like LinearFast (any num_tokens; only small ones are fast).
void LinearGemv(const LinearParams& p, CpuIsa isa);

// The OpenBLAS path (any num_tokens): cblas_sgemm on column slices of W over the default pool.
void LinearBlas(const LinearParams& p);

}  // namespace tandem::kernels::cpu::internal
