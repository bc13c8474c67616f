#include "kernels/cpu/conv1d.h"

#include <vector>

#include "core/logging.h"
#include "kernels/cpu/elementwise.h"

namespace tandem::kernels::cpu {

void CausalConv1d(const CausalConv1dParams& p) {
  TANDEM_CHECK(p.x != nullptr && p.weight != nullptr && p.cu_seqlens != nullptr &&
               p.slots != nullptr && p.has_initial_state != nullptr && p.conv_state != nullptr &&
               p.out != nullptr);
  TANDEM_CHECK(p.kernel >= 2 && p.channels > 0);
  const int64_t km1 = p.kernel - 1;
  const int64_t x_stride = p.x_stride == 0 ? p.channels : p.x_stride;
  const int64_t slot_stride = p.slot_stride == 0 ? p.channels * km1 : p.slot_stride;
  TANDEM_CHECK(slot_stride >= p.channels * km1);
  std::vector<float> window(km1);
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const int64_t begin = p.cu_seqlens[s];
    const int64_t len = p.cu_seqlens[s + 1] - begin;
    TANDEM_CHECK(len >= 0);
    const int64_t slot = p.slots[s];
    TANDEM_CHECK(slot >= 0 && slot < p.num_slots) << "slot " << slot;
    const bool init = p.has_initial_state[s] != 0;
    float* state = p.conv_state + slot * slot_stride;
    for (int64_t c = 0; c < p.channels; ++c) {
      float* st = state + c * km1;  // st[km1 - 1] is the newest row before this chunk
      // Raw input at relative token index i (i < 0 reaches into the previous chunk).
      auto pre = [&](int64_t i) -> float {
        if (i >= 0) return p.x[(begin + i) * x_stride + c];
        return init ? st[km1 + i] : 0.0f;
      };
      for (int64_t t = 0; t < len; ++t) {
        float acc = p.bias != nullptr ? p.bias[c] : 0.0f;
        for (int64_t k = 0; k < p.kernel; ++k) {
          acc += p.weight[c * p.kernel + k] * pre(t - km1 + k);
        }
        p.out[(begin + t) * p.channels + c] = Silu(acc);
      }
      for (int64_t j = 0; j < km1; ++j) window[j] = pre(len - km1 + j);
      for (int64_t j = 0; j < km1; ++j) st[j] = window[j];
    }
  }
}

void CausalConv1dUpdate(const CausalConv1dUpdateParams& p) {
  TANDEM_CHECK(p.x != nullptr && p.weight != nullptr && p.slots != nullptr &&
               p.conv_state != nullptr && p.out != nullptr);
  TANDEM_CHECK(p.kernel >= 2 && p.channels > 0);
  const int64_t km1 = p.kernel - 1;
  const int64_t x_stride = p.x_stride == 0 ? p.channels : p.x_stride;
  const int64_t slot_stride = p.slot_stride == 0 ? p.channels * km1 : p.slot_stride;
  TANDEM_CHECK(slot_stride >= p.channels * km1);
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t slot = p.slots[b];
    TANDEM_CHECK(slot >= 0 && slot < p.num_slots) << "slot " << slot;
    float* state = p.conv_state + slot * slot_stride;
    for (int64_t c = 0; c < p.channels; ++c) {
      float* st = state + c * km1;
      const float* w = p.weight + c * p.kernel;
      const float xc = p.x[b * x_stride + c];
      float acc = p.bias != nullptr ? p.bias[c] : 0.0f;
      for (int64_t k = 0; k < km1; ++k) acc += w[k] * st[k];
      acc += w[km1] * xc;
      p.out[b * p.channels + c] = Silu(acc);
      for (int64_t k = 0; k + 1 < km1; ++k) st[k] = st[k + 1];
      st[km1 - 1] = xc;
    }
  }
}

}  // namespace tandem::kernels::cpu
