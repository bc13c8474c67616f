#include "model/mixer.h"

#include "kernels/cpu/elementwise.h"

namespace tandem::model {

void MaybeRoundBf16(bool on, float* x, int64_t n) {
  if (on) kernels::cpu::RoundToBf16InPlace(x, n);
}

}  // namespace tandem::model
