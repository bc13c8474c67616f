#include "model/plan_validation.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace tandem::model {

absl::Status ValidateStepPlan(const core::ModelConfig& config, const StateCapacity& capacity,
                              int64_t layer_begin, int64_t layer_end, const StepPlan& plan,
                              absl::Span<const int64_t> snapshot_positions) {
  if (plan.sequences.empty()) return absl::InvalidArgumentError("step plan has no sequences");
  bool needs_blocks = false;
  for (int64_t i = layer_begin; i < layer_end; ++i) {
    if (config.layers[i] == core::LayerKind::kAttention) needs_blocks = true;
  }
  std::set<int32_t> slots;
  std::set<int32_t> written_blocks;
  std::set<int32_t> saved_snapshots;
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const SequenceStep& s = plan.sequences[i];
    const auto where = [&] { return absl::StrCat("sequence ", i, " (slot ", s.slot, "): "); };
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat(where(), "no tokens"));
    for (int32_t id : s.token_ids) {
      if (id < 0 || id >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            where(), "token id ", id, " is outside the vocabulary [0, ", config.vocab_size, ")"));
      }
    }
    if (s.start_pos < 0 || s.start_pos + n > config.max_position_embeddings) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "positions [", s.start_pos, ", ", s.start_pos + n,
                       ") exceed max_position_embeddings=", config.max_position_embeddings));
    }
    if (s.slot < 0 || s.slot >= capacity.num_slots) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "slot outside [0, ", capacity.num_slots, ")"));
    }
    if (!slots.insert(s.slot).second) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "slot used twice in one step"));
    }
    const auto outside = [&](const char* what, int32_t id) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), what, " ", id, " is outside [0, ", capacity.num_snapshots, ")"));
    };
    if (s.restore_snapshot != -1) {
      const int32_t k = s.restore_snapshot;
      if (k < 0 || k >= capacity.num_snapshots) return outside("restore_snapshot", k);
      const int64_t saved_at =
          k < static_cast<int64_t>(snapshot_positions.size()) ? snapshot_positions[k] : -1;
      if (saved_at < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), "restore_snapshot ", k, " was never saved"));
      }
      if (s.start_pos <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            where(), "restore_snapshot ", k, " needs start_pos > 0 (got ", s.start_pos, ")"));
      }
      if (s.start_pos != saved_at) {
        return absl::InvalidArgumentError(absl::StrCat(where(), "restore_snapshot ", k,
                                                       " was saved at position ", saved_at,
                                                       ", not at start_pos ", s.start_pos));
      }
    }
    if (s.save_snapshot != -1) {
      const int32_t k = s.save_snapshot;
      if (k < 0 || k >= capacity.num_snapshots) return outside("save_snapshot", k);
      if (!saved_snapshots.insert(k).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), "save_snapshot ", k, " is saved by two sequences in one step"));
      }
    }
    if (!needs_blocks) continue;
    const int64_t bs = capacity.block_size;
    const int64_t needed = (s.start_pos + n + bs - 1) / bs;
    if (static_cast<int64_t>(s.block_table.size()) < needed) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "block table has ",
                                                     s.block_table.size(), " blocks, needs ",
                                                     needed, " for ", s.start_pos + n, " tokens"));
    }
    for (int64_t b = 0; b < needed; ++b) {
      const int32_t id = s.block_table[b];
      if (id < 0 || id >= capacity.num_blocks) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), "block id ", id, " outside [0, ", capacity.num_blocks, ")"));
      }
      if (b >= s.start_pos / bs && !written_blocks.insert(id).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), "block ", id, " is written by two sequences in one step"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::model
