// Host-side launch planning of the CUDA kernels: pure functions, unit-tested without a GPU.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace tandem::kernels::cuda {

// Ceil division for positive b.
constexpr int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Chunked SSD scan: tokens per chunk and head_dim rows per block (fixed by the kernel).
constexpr int64_t SsdChunkSize() { return 32; }
constexpr int64_t SsdHeadDimTile() { return 32; }

struct SsdLaunchPlan {
  int64_t grid_x = 0;  // sequences
  int64_t grid_y = 0;  // heads
  int64_t grid_z = 0;  // head_dim tiles
  int64_t threads = 256;
  int64_t shared_bytes = 0;  // dynamic shared memory
};
// InvalidArgument for non-positive sizes, heads not divisible by groups, or shared memory over
// max_shared_bytes (the device's opt-in limit).
absl::StatusOr<SsdLaunchPlan> PlanSsdScan(int64_t num_seqs, int64_t num_heads, int64_t head_dim,
                                          int64_t n_groups, int64_t state_size,
                                          int64_t max_shared_bytes);

struct StateUpdatePlan {
  int64_t rows_per_block = 0;  // head_dim rows handled by one block (a warp per row at a time)
  int64_t grid_x = 0;          // batch
  int64_t grid_y = 0;          // heads
  int64_t grid_z = 0;          // head_dim tiles
  int64_t threads = 128;
  bool vectorized = false;  // 16-byte state accesses (state_size % 4 == 0)
};
absl::StatusOr<StateUpdatePlan> PlanStateUpdate(int64_t batch, int64_t num_heads, int64_t head_dim,
                                                int64_t n_groups, int64_t state_size);

// Flash-style prefill attention: query rows per tile, keys per tile and shared memory.
struct AttentionPlan {
  int64_t q_tile = 16;
  int64_t k_tile = 32;
  int64_t grid_x = 0;  // query tiles of the longest sequence
  int64_t grid_y = 0;  // q heads
  int64_t grid_z = 0;  // sequences
  int64_t threads = 128;
  int64_t shared_bytes = 0;
  bool decode = false;  // max_query_len == 1: one block per (sequence, q head), warp split-K
};
absl::StatusOr<AttentionPlan> PlanAttention(int64_t num_seqs, int64_t num_q_heads,
                                            int64_t num_kv_heads, int64_t head_dim,
                                            int64_t max_query_len, int64_t max_shared_bytes);

// Threads per block for row-wise reductions (norms): a multiple of 32 in [32, 1024] covering
// `width` elements with `per_thread` each where possible.
int64_t RowThreads(int64_t width, int64_t per_thread);

}  // namespace tandem::kernels::cuda
