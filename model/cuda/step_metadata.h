// Host-side logic of the CUDA model backend (pure C++, built and unit-tested without CUDA):
// plan validation (the CPU model's rules), the packing of one step's metadata into a single int32
// buffer (one host-to-device copy per step), and the layout of the activation workspace.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/model_config.h"
#include "model/mixer.h"
#include "model/plan_validation.h"
#include "model/step_plan.h"

namespace tandem::model::cuda {

// Plan validation is model::ValidateStepPlan (model/plan_validation.h), shared with the CPU model.
using ::tandem::model::ValidateStepPlan;

// One step's metadata in one int32 buffer. Offsets are in int32 elements from the buffer start;
// has_initial_state is stored as bytes (uint8) from int32 offset `has_initial_state`.
//   token_ids [num_tokens] | cu_seqlens [num_seqs + 1] | slots [num_seqs] | start_pos [num_seqs]
//   | block_tables [num_seqs, max_blocks_per_seq] | logits_rows [num_logits_rows]
//   | has_initial_state [num_seqs] bytes, padded to whole int32s
// logits_rows are the token rows that need logits, in plan order (row_begin/row_count say which
// belong to which sequence, as in StepLogits).
struct PackedStep {
  std::vector<int32_t> buffer;
  int64_t token_ids = 0, cu_seqlens = 0, slots = 0, start_pos = 0, block_tables = 0,
          logits_rows = 0, has_initial_state = 0;
  int64_t num_tokens = 0, num_seqs = 0, max_query_len = 0, max_blocks_per_seq = 0;
  int64_t num_logits_rows = 0;
  // Every sequence feeds one token and continues earlier state (start_pos > 0): the decode
  // kernels (conv update, selective state update, split-K decode attention) apply.
  bool pure_decode = false;
  std::vector<int64_t> row_begin, row_count;
};

// Packs a validated plan.
PackedStep PackStep(const StepPlan& plan);

// Byte offsets (256-aligned) of the activation buffers of one step of up to `max_tokens` tokens
// and `max_rows` logits rows, for elements of `elem_bytes` bytes (2 = bf16, 4 = f32) over the
// layers [layer_begin, layer_end) of `config`. The mixers share one scratch region sized for the
// largest of them. logits_f32 is empty (0 bytes) when elem_bytes == 4 (the logits are f32 then).
struct WorkspaceLayout {
  int64_t max_tokens = 0, max_rows = 0;
  size_t hidden = 0;      // [T, H] residual stream
  size_t normed = 0;      // [T, H] normalised block input / final norm output
  size_t mixer_out = 0;   // [T, H]
  size_t scratch = 0;     // mixer intermediates (see ScratchBytes)
  size_t rows = 0;        // [R, H] gathered rows for lm_head
  size_t logits = 0;      // [R, V] in the element type
  size_t logits_f32 = 0;  // [R, V] f32 (bf16 models)
  size_t total_bytes = 0;
};
size_t AlignUp(size_t bytes, size_t alignment = 256);
// Per-token scratch of the widest mixer in [layer_begin, layer_end): Mamba-2 zxbcdt + xBC + y,
// attention q + k + v + o, MLP the ffn activation; each part 256-aligned for `tokens` tokens.
size_t ScratchBytes(const core::ModelConfig& config, int64_t layer_begin, int64_t layer_end,
                    int64_t tokens, size_t elem_bytes);
WorkspaceLayout LayoutWorkspace(const core::ModelConfig& config, int64_t layer_begin,
                                int64_t layer_end, int64_t max_tokens, int64_t max_rows,
                                size_t elem_bytes);

}  // namespace tandem::model::cuda
