#include "kernels/cpu/selective_state_update.h"

#include <cmath>

#include "core/logging.h"
#include "kernels/cpu/elementwise.h"

namespace tandem::kernels::cpu {

void SelectiveStateUpdate(const SelectiveStateUpdateParams& p) {
  TANDEM_CHECK(p.x != nullptr && p.dt != nullptr && p.A_log != nullptr && p.B != nullptr &&
               p.C != nullptr && p.D != nullptr && p.dt_bias != nullptr && p.slots != nullptr &&
               p.ssm_state != nullptr && p.y != nullptr);
  TANDEM_CHECK(p.num_heads > 0 && p.head_dim > 0 && p.state_size > 0 && p.n_groups > 0);
  TANDEM_CHECK(p.num_heads % p.n_groups == 0)
      << "num_heads " << p.num_heads << " n_groups " << p.n_groups;
  const int64_t P = p.head_dim, N = p.state_size;
  const int64_t x_stride = p.x_stride == 0 ? p.num_heads * P : p.x_stride;
  const int64_t dt_stride = p.dt_stride == 0 ? p.num_heads : p.dt_stride;
  const int64_t b_stride = p.b_stride == 0 ? p.n_groups * N : p.b_stride;
  const int64_t c_stride = p.c_stride == 0 ? p.n_groups * N : p.c_stride;
  const int64_t heads_per_group = p.num_heads / p.n_groups;
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t slot = p.slots[b];
    TANDEM_CHECK(slot >= 0 && slot < p.num_slots) << "slot " << slot;
    for (int64_t j = 0; j < p.num_heads; ++j) {
      float* S = p.ssm_state + ((slot * p.num_heads) + j) * P * N;
      const int64_t g = j / heads_per_group;
      const float dt = Softplus(p.dt[b * dt_stride + j] + p.dt_bias[j]);
      const float decay = std::exp(dt * -std::exp(p.A_log[j]));
      const float* x = p.x + b * x_stride + j * P;
      const float* B = p.B + b * b_stride + g * N;
      const float* C = p.C + b * c_stride + g * N;
      float* y = p.y + (b * p.num_heads + j) * P;
      for (int64_t q = 0; q < P; ++q) {
        float* row = S + q * N;
        double acc = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          row[n] = row[n] * decay + dt * B[n] * x[q];
          acc += static_cast<double>(row[n]) * C[n];
        }
        y[q] = static_cast<float>(acc) + p.D[j] * x[q];
      }
    }
  }
}

}  // namespace tandem::kernels::cpu
