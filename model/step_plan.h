// A step plan: what one forward step computes, sequence by sequence.
//
// The coordinator (or a local driver such as `tandem logits`) decides; the model executes. A
// sequence is addressed by its SSM state slot and its KV block table, never by its position in the
// batch. Each sequence feeds `token_ids` at positions start_pos .. start_pos + n - 1: a prefill
// chunk (n >= 1) or one decode token. start_pos == 0 means a fresh sequence: its SSM and conv
// state start from zero whatever the slot held before, so a released slot needs no clearing.
// The block table must cover positions [0, start_pos + n) (ceil((start_pos + n) / block_size)
// blocks) when the model has attention layers.
// Prefix caching: restore_snapshot >= 0 makes the slot's SSM and conv state a copy of that snapshot
// before the step's forward (start_pos must equal the position it was saved at); save_snapshot >= 0
// copies the slot's state into that snapshot after the forward (the state at position
// start_pos + n). Every restore of a step happens before its forward and every save after it.
// Plain values; thread-compatible.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace tandem::model {

enum class LogitsRequest { kNone, kLast, kAll };

struct SequenceStep {
  int32_t slot = 0;
  std::vector<int32_t> block_table;
  int64_t start_pos = 0;
  std::vector<int32_t> token_ids;
  LogitsRequest logits = LogitsRequest::kLast;
  int32_t restore_snapshot = -1;  // -1: none
  int32_t save_snapshot = -1;     // -1: none
};

struct StepPlan {
  std::vector<SequenceStep> sequences;
  int64_t num_tokens() const {
    int64_t n = 0;
    for (const auto& s : sequences) n += static_cast<int64_t>(s.token_ids.size());
    return n;
  }
};

// Logits of the requested positions: rows [row_begin[s], row_begin[s] + row_count[s]) of
// `logits` ([rows, vocab_local] f32) belong to sequence s of the plan.
struct StepLogits {
  core::Tensor logits;
  std::vector<int64_t> row_begin;
  std::vector<int64_t> row_count;
};

}  // namespace tandem::model
