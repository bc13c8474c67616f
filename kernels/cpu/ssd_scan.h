// Mamba-2 selective scan for prefill over a varlen batch (fp32 math, fp32 state).
//
// Per sequence, per head j (group g = j / (num_heads / n_groups)), per token t:
//   dt_t  = softplus(dt[t, j] + dt_bias[j])      (threshold 20, no clamping)
//   A_j   = -exp(A_log[j])
//   S_j   = S_j * exp(dt_t * A_j) + dt_t * x[t, j, :] (outer) B[t, g, :]     S_j: [head_dim, state]
//   y[t, j, p] = sum_n S_j[p, n] * C[t, g, n] + D[j] * x[t, j, p]
// S starts from the slot's state when has_initial_state, else from zeros; the final S of each
// sequence is written back to its slot.
//
// SsmScan is the sequential recurrence (the reference). SsdChunkScan is the chunked SSD form
// (chunks of chunk_size tokens per sequence: intra-chunk quadratic form with segment-sum decays,
// chunk states, inter-chunk state passing); it equals SsmScan up to fp32 rounding (tests: 1e-5
// absolute + relative on O(1) outputs).
// Fast paths, threaded over (sequence, head) with core::ThreadPool::Default():
//   SsmScanFast: the sequential recurrence; the same states bit for bit, outputs with fp32 instead
//     of double dot products. The fastest form on CPUs (fewest flops): use it for CPU prefill.
//   SsdChunkScanFast: SsdChunkScan threaded (bit-identical to it); the form GPU kernels mirror.
// Do not call the fast paths from inside a ParallelFor of the default pool (its workers do not
// help with nested work). Not thread-safe for calls sharing slots; slots within one call must
// differ.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

struct SsmScanParams {
  const float* x = nullptr;  // [num_tokens, x_stride]: x[t, j, p] at x[t*x_stride + j*head_dim + p]
  const float* dt = nullptr;     // [num_tokens, dt_stride]: raw dt (before dt_bias/softplus)
  const float* A_log = nullptr;  // [num_heads]
  const float* B =
      nullptr;  // [num_tokens, b_stride]: B[t, g, n] at B[t*b_stride + g*state_size + n]
  const float* C = nullptr;                    // [num_tokens, c_stride]: same layout as B
  const float* D = nullptr;                    // [num_heads]
  const float* dt_bias = nullptr;              // [num_heads]
  const int32_t* cu_seqlens = nullptr;         // [num_seqs + 1], cu_seqlens[0] = 0
  const int32_t* slots = nullptr;              // [num_seqs]
  const uint8_t* has_initial_state = nullptr;  // [num_seqs]
  float* ssm_state = nullptr;  // pool [num_slots, num_heads, head_dim, state_size] fp32
  float* y = nullptr;          // [num_tokens, num_heads, head_dim] (dense)
  int64_t num_seqs = 0;
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

void SsmScan(const SsmScanParams& p);
void SsmScanFast(const SsmScanParams& p);
void SsdChunkScan(const SsmScanParams& p, int64_t chunk_size);
void SsdChunkScanFast(const SsmScanParams& p, int64_t chunk_size);

}  // namespace tandem::kernels::cpu
