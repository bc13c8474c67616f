#include "model/cuda/step_metadata.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"

namespace tandem::model::cuda {

PackedStep PackStep(const StepPlan& plan) {
  PackedStep p;
  p.num_seqs = static_cast<int64_t>(plan.sequences.size());
  p.pure_decode = p.num_seqs > 0;
  std::vector<int32_t> rows;
  int64_t token = 0;
  for (const SequenceStep& s : plan.sequences) {
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    p.max_query_len = std::max(p.max_query_len, n);
    p.max_blocks_per_seq =
        std::max<int64_t>(p.max_blocks_per_seq, static_cast<int64_t>(s.block_table.size()));
    if (n != 1 || s.start_pos == 0) p.pure_decode = false;
    p.row_begin.push_back(static_cast<int64_t>(rows.size()));
    if (s.logits == LogitsRequest::kAll) {
      for (int64_t i = 0; i < n; ++i) rows.push_back(static_cast<int32_t>(token + i));
    } else if (s.logits == LogitsRequest::kLast) {
      rows.push_back(static_cast<int32_t>(token + n - 1));
    }
    p.row_count.push_back(static_cast<int64_t>(rows.size()) - p.row_begin.back());
    token += n;
  }
  p.num_tokens = token;
  p.num_logits_rows = static_cast<int64_t>(rows.size());
  const int64_t S = p.num_seqs;
  p.token_ids = 0;
  p.cu_seqlens = p.token_ids + p.num_tokens;
  p.slots = p.cu_seqlens + S + 1;
  p.start_pos = p.slots + S;
  p.block_tables = p.start_pos + S;
  p.logits_rows = p.block_tables + S * p.max_blocks_per_seq;
  p.has_initial_state = p.logits_rows + p.num_logits_rows;
  const int64_t total = p.has_initial_state + (S + 3) / 4;
  p.buffer.assign(static_cast<size_t>(total), 0);
  int32_t* b = p.buffer.data();
  int64_t t = 0;
  b[p.cu_seqlens] = 0;
  for (int64_t i = 0; i < S; ++i) {
    const SequenceStep& s = plan.sequences[i];
    std::copy(s.token_ids.begin(), s.token_ids.end(), b + p.token_ids + t);
    t += static_cast<int64_t>(s.token_ids.size());
    b[p.cu_seqlens + i + 1] = static_cast<int32_t>(t);
    b[p.slots + i] = s.slot;
    b[p.start_pos + i] = static_cast<int32_t>(s.start_pos);
    std::copy(s.block_table.begin(), s.block_table.end(),
              b + p.block_tables + i * p.max_blocks_per_seq);
    const uint8_t has_initial = s.start_pos > 0 ? 1 : 0;
    std::memcpy(reinterpret_cast<uint8_t*>(b + p.has_initial_state) + i, &has_initial, 1);
  }
  std::copy(rows.begin(), rows.end(), b + p.logits_rows);
  return p;
}

size_t AlignUp(size_t bytes, size_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

size_t ScratchBytes(const core::ModelConfig& c, int64_t layer_begin, int64_t layer_end,
                    int64_t tokens, size_t elem_bytes) {
  const auto part = [&](int64_t width) {
    return AlignUp(static_cast<size_t>(tokens) * static_cast<size_t>(width) * elem_bytes);
  };
  size_t widest = 0;
  for (int64_t i = layer_begin; i < layer_end; ++i) {
    size_t bytes = 0;
    switch (c.layers[i]) {
      case core::LayerKind::kMamba:
        bytes = part(c.in_proj_dim()) + part(c.conv_dim()) + part(c.d_inner());
        break;
      case core::LayerKind::kAttention:
        bytes = 2 * part(c.q_dim()) + 2 * part(c.kv_dim());
        break;
      case core::LayerKind::kMlp:
        bytes = part(c.intermediate_size);
        break;
    }
    widest = std::max(widest, bytes);
  }
  return widest;
}

WorkspaceLayout LayoutWorkspace(const core::ModelConfig& c, int64_t layer_begin, int64_t layer_end,
                                int64_t max_tokens, int64_t max_rows, size_t elem_bytes) {
  WorkspaceLayout w;
  w.max_tokens = max_tokens;
  w.max_rows = max_rows;
  const size_t th = AlignUp(static_cast<size_t>(max_tokens * c.hidden_size) * elem_bytes);
  const size_t rh = AlignUp(static_cast<size_t>(max_rows * c.hidden_size) * elem_bytes);
  const size_t rv = static_cast<size_t>(max_rows * c.vocab_size);
  size_t offset = 0;
  const auto take = [&](size_t bytes) {
    const size_t at = offset;
    offset += AlignUp(bytes);
    return at;
  };
  w.hidden = take(th);
  w.normed = take(th);
  w.mixer_out = take(th);
  w.scratch = take(ScratchBytes(c, layer_begin, layer_end, max_tokens, elem_bytes));
  w.rows = take(rh);
  w.logits = take(rv * elem_bytes);
  w.logits_f32 = elem_bytes == 4 ? w.logits : take(rv * 4);
  w.total_bytes = offset;
  return w;
}

}  // namespace tandem::model::cuda
