// A step plan: what one forward step computes, sequence by sequence.
//
// The coordinator (or a local driver such as `tandem logits`) decides; the model executes. A
// sequence is addressed by its SSM state slot and its KV block table, never by its position in the
// batch. Each sequence feeds `token_ids` at positions start_pos .. start_pos + n - 1: a prefill
// chunk (n >= 1) or one decode token. start_pos == 0 means a fresh sequence: its SSM and conv
// state start from zero whatever the slot held before, so a released slot needs no clearing.
// The block table must cover positions [0, start_pos + n) (ceil((start_pos + n) / block_size)
// blocks) when the model has attention layers. Plain values; thread-compatible.
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
