// Causal depthwise conv1d + SiLU over Mamba-2 xBC, with a per-sequence conv state in a slot pool.
//
// For channel c and token t of one sequence (K = kernel width, pre = raw pre-activation rows):
//   out[t, c] = silu(bias[c] + sum_{k=0..K-1} w[c, k] * pre[t-(K-1)+k, c])
// so w[c, K-1] multiplies the current token. Rows before the sequence start come from the conv
// state when has_initial_state (the last K-1 raw rows of the earlier chunk), zeros otherwise.
//
// Conv state pool: slot s lives at conv_state + s * slot_stride and is [channels, K-1]
// (channel-major); index K-2 is the newest row. After the call each sequence's slot holds the
// last K-1 raw rows seen (taking older rows from the previous state, or zeros, when the chunk is
// shorter than K-1). Slots of different sequences in one call must differ.
//
// CausalConv1dUpdate is the decode form (one token per sequence, state always used): equal to
// CausalConv1d with every sequence of length 1 and has_initial_state = 1.
// Not thread-safe for calls sharing slots; distinct slots/outputs are independent.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

struct CausalConv1dParams {
  const float* x = nullptr;       // [num_tokens, x_stride]: raw xBC, channel c at x[t*x_stride + c]
  const float* weight = nullptr;  // [channels, kernel]
  const float* bias = nullptr;    // [channels], or nullptr for none
  const int32_t* cu_seqlens = nullptr;         // [num_seqs + 1], cu_seqlens[0] = 0
  const int32_t* slots = nullptr;              // [num_seqs] conv state slot of each sequence
  const uint8_t* has_initial_state = nullptr;  // [num_seqs] 1: continue from the slot's state
  float* conv_state = nullptr;  // pool [num_slots, slot_stride], slot = [channels, kernel - 1]
  float* out = nullptr;         // [num_tokens, channels] (dense), post-SiLU
  int64_t num_seqs = 0;
  int64_t channels = 0;
  int64_t kernel = 4;
  int64_t num_slots = 0;
  int64_t x_stride = 0;     // 0 means channels
  int64_t slot_stride = 0;  // 0 means channels * (kernel - 1)
};

void CausalConv1d(const CausalConv1dParams& p);

struct CausalConv1dUpdateParams {
  const float* x = nullptr;        // [batch, x_stride]: one raw xBC row per sequence
  const float* weight = nullptr;   // [channels, kernel]
  const float* bias = nullptr;     // [channels], or nullptr
  const int32_t* slots = nullptr;  // [batch]
  float* conv_state = nullptr;     // pool, as in CausalConv1dParams; rolled by one row
  float* out = nullptr;            // [batch, channels], post-SiLU
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t kernel = 4;
  int64_t num_slots = 0;
  int64_t x_stride = 0;     // 0 means channels
  int64_t slot_stride = 0;  // 0 means channels * (kernel - 1)
};

void CausalConv1dUpdate(const CausalConv1dUpdateParams& p);

}  // namespace tandem::kernels::cpu
