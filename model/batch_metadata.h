// Per-step metadata shared by all layers of a forward: the varlen batch layout (cu_seqlens),
// each sequence's slot, start position, whether it continues earlier state, and its block table
// padded to a rectangle. Built once per step from a validated StepPlan. Plain value.
#pragma once

#include <cstdint>
#include <vector>

#include "model/step_plan.h"

namespace tandem::model {

struct BatchMetadata {
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  std::vector<int32_t> token_ids;          // [num_tokens]
  std::vector<int32_t> cu_seqlens;         // [num_seqs + 1]
  std::vector<int32_t> slots;              // [num_seqs]
  std::vector<int32_t> start_pos;          // [num_seqs]
  std::vector<uint8_t> has_initial_state;  // [num_seqs]
  std::vector<int32_t> block_tables;       // [num_seqs, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
  std::vector<int32_t> restore_snapshot;  // [num_seqs], -1: none
  std::vector<int32_t> save_snapshot;     // [num_seqs], -1: none

  static BatchMetadata FromPlan(const StepPlan& plan);
};

}  // namespace tandem::model
