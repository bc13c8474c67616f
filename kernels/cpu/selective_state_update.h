// Mamba-2 decode step: one token per sequence, state updated in place in its slot.
//
// Exactly the recurrence of ssd_scan.h for one token with the slot's state as the initial state
// (equal to SsmScan with every sequence of length 1 and has_initial_state = 1).
// Not thread-safe for calls sharing slots; slots within one call must differ.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

struct SelectiveStateUpdateParams {
  const float* x = nullptr;      // [batch, x_stride]: x[b, j, p] at x[b*x_stride + j*head_dim + p]
  const float* dt = nullptr;     // [batch, dt_stride]: raw dt
  const float* A_log = nullptr;  // [num_heads]
  const float* B = nullptr;  // [batch, b_stride]: B[b, g, n] at B[b*b_stride + g*state_size + n]
  const float* C = nullptr;  // [batch, c_stride]
  const float* D = nullptr;  // [num_heads]
  const float* dt_bias = nullptr;  // [num_heads]
  const int32_t* slots = nullptr;  // [batch]
  float* ssm_state = nullptr;      // pool [num_slots, num_heads, head_dim, state_size] fp32
  float* y = nullptr;              // [batch, num_heads, head_dim] (dense)
  int64_t batch = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t n_groups = 0;
  int64_t state_size = 0;
  int64_t num_slots = 0;
  int64_t x_stride = 0;   // 0 means num_heads * head_dim
  int64_t dt_stride = 0;  // 0 means num_heads
  int64_t b_stride = 0;   // 0 means n_groups * state_size
  int64_t c_stride = 0;   // 0 means n_groups * state_size
};

void SelectiveStateUpdate(const SelectiveStateUpdateParams& p);

}  // namespace tandem::kernels::cpu
