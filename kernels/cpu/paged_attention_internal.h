// Internals of PagedAttentionFast (kernels/cpu/paged_attention.h), for tests and benchmarks.
//
// The per-(sequence, kv head) attention has two builds of the same loops: AVX2+FMA dot products
// and weighted sums of v over head_dim (chosen at run time when the CPU has both) and a portable
// one. PagedAttentionFast uses BestCpuIsa().
#pragma once

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/paged_attention.h"

namespace tandem::kernels::cpu::internal {

// PagedAttentionFast with an explicit path; `isa` must be supported (CpuIsaSupported).
void PagedAttentionFastWithIsa(const PagedAttentionParams& p, CpuIsa isa);

}  // namespace tandem::kernels::cpu::internal
