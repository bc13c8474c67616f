// Runtime CPU dispatch of the fast CPU kernels: which instruction-set path this CPU runs.
//
// Kernels with an AVX2+FMA path compile it with __attribute__((target("avx2,fma"))) and keep a
// portable version of the same loops, so one binary runs on any x86-64 and the code builds on any
// architecture. Tests run both paths through the kernels' internal headers.
#pragma once

namespace tandem::kernels::cpu {

enum class CpuIsa { kPortable, kAvx2Fma };

// Whether this CPU (and this build's architecture) can run `isa`.
bool CpuIsaSupported(CpuIsa isa);
// The fastest path this CPU runs: kAvx2Fma where supported, else kPortable.
CpuIsa BestCpuIsa();

}  // namespace tandem::kernels::cpu
