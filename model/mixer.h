// The interface every Nemotron-H block's mixer implements (Mamba-2, attention, MLP), and what a
// forward step hands each of them.
//
// A mixer owns its rank's weight slice and, for Mamba-2 and attention, its rank's slice of the
// per-sequence state (SSM/conv slots, paged KV blocks) sized by StateCapacity. Forward maps the
// block's normalised input x [T, H] to this rank's partial output [T, H]; the caller all-reduces
// it over TP ranks and adds the residual. Not thread-safe: one forward at a time.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "model/batch_metadata.h"
#include "model/parallel_context.h"

namespace tandem::model {

struct StateCapacity {
  int64_t num_slots = 0;    // SSM/conv state slots (sequences in flight)
  int64_t num_blocks = 0;   // KV blocks per attention layer
  int64_t block_size = 16;  // tokens per KV block
  // Prefix-cache snapshot entries: extra SSM/conv state rows (snapshot k is row num_slots + k),
  // filled and read only by copies between rows (Mixer::CopyStateRow).
  int64_t num_snapshots = 0;
};

struct ForwardContext {
  const BatchMetadata* meta = nullptr;
  bool round_bf16 = false;  // emulate the bf16 reference's rounding points (bf16 checkpoints)
  bool reference_kernels = false;  // plain reference kernels instead of the fast paths
};

// Rounds to bf16 in place when `on` (the points are listed in docs/numerics.md).
void MaybeRoundBf16(bool on, float* x, int64_t n);

class Mixer {
 public:
  virtual ~Mixer() = default;
  [[nodiscard]] virtual absl::Status Forward(const ForwardContext& ctx, const float* x,
                                             float* out) = 0;
  virtual void AllocateState(const StateCapacity& capacity) = 0;
  virtual uint64_t weight_bytes() const = 0;
  // Bytes of the per-sequence slot pools (SSM/conv slots, KV blocks); snapshot rows excluded.
  virtual uint64_t state_bytes() const = 0;
  // Copies one row of the per-slot state (SSM + conv) to another: rows [0, num_slots) are slots,
  // rows num_slots + k snapshot k. No-op for mixers without per-slot state (attention's KV blocks
  // are shared by reference, never copied).
  virtual void CopyStateRow(int64_t /*from_row*/, int64_t /*to_row*/) {}
  // Bytes of one row of the per-slot state (0 without per-slot state).
  virtual uint64_t state_row_bytes() const { return 0; }
};

}  // namespace tandem::model
