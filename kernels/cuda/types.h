// Host-visible types of the CUDA backend. No CUDA headers here (DESIGN.md §4): streams travel as
// `void*` (a cudaStream_t; nullptr = the legacy default stream) and bf16 as raw bits.
#pragma once

#include <cstdint>

namespace tandem::kernels::cuda {

// A bf16 value as its bit pattern; layout-compatible with __nv_bfloat16 (the kernels reinterpret).
struct Bf16 {
  uint16_t bits = 0;
};
static_assert(sizeof(Bf16) == 2, "Bf16 must be 2 bytes");

// Element types the typed ops are instantiated for: float and Bf16.
template <typename T>
inline constexpr bool kIsKernelType = false;
template <>
inline constexpr bool kIsKernelType<float> = true;
template <>
inline constexpr bool kIsKernelType<Bf16> = true;

}  // namespace tandem::kernels::cuda
