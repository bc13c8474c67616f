#include "model/batch_metadata.h"

#include <algorithm>

namespace tandem::model {

BatchMetadata BatchMetadata::FromPlan(const StepPlan& plan) {
  BatchMetadata m;
  m.num_seqs = static_cast<int64_t>(plan.sequences.size());
  m.cu_seqlens.push_back(0);
  for (const SequenceStep& s : plan.sequences) {
    m.token_ids.insert(m.token_ids.end(), s.token_ids.begin(), s.token_ids.end());
    m.cu_seqlens.push_back(static_cast<int32_t>(m.token_ids.size()));
    m.slots.push_back(s.slot);
    m.start_pos.push_back(static_cast<int32_t>(s.start_pos));
    m.has_initial_state.push_back(s.start_pos > 0 ? 1 : 0);
    m.restore_snapshot.push_back(s.restore_snapshot);
    m.save_snapshot.push_back(s.save_snapshot);
    m.max_blocks_per_seq =
        std::max<int64_t>(m.max_blocks_per_seq, static_cast<int64_t>(s.block_table.size()));
  }
  m.num_tokens = static_cast<int64_t>(m.token_ids.size());
  m.block_tables.assign(m.num_seqs * m.max_blocks_per_seq, 0);
  for (int64_t i = 0; i < m.num_seqs; ++i) {
    const auto& table = plan.sequences[i].block_table;
    std::copy(table.begin(), table.end(), m.block_tables.begin() + i * m.max_blocks_per_seq);
  }
  return m;
}

}  // namespace tandem::model
