#include "kernels/cpu/cpu_isa.h"

namespace tandem::kernels::cpu {

bool CpuIsaSupported(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kPortable:
      return true;
    case CpuIsa::kAvx2Fma:
#if defined(__x86_64__) || defined(__i386__)
      __builtin_cpu_init();  // harmless if done; needed if called before main
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
      return false;
#endif
  }
  return false;
}

CpuIsa BestCpuIsa() {
  static const CpuIsa best =
      CpuIsaSupported(CpuIsa::kAvx2Fma) ? CpuIsa::kAvx2Fma : CpuIsa::kPortable;
  return best;
}

}  // namespace tandem::kernels::cpu
