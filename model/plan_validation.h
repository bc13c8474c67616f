// Validation of a step plan against a model shard's configuration and state capacity, shared by
// every backend (the CPU NemotronHModel and the CUDA model) so they accept exactly the same plans.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/model_config.h"
#include "model/mixer.h"
#include "model/step_plan.h"

namespace tandem::model {

// For a shard of layers [layer_begin, layer_end): InvalidArgument naming the sequence and the value
// (no sequences, a sequence without tokens, a token id outside the vocabulary, positions past
// max_position_embeddings, a slot out of range or used twice, a block table too short, a block id
// out of range or written by two sequences). Block tables are checked only when the shard holds an
// attention layer. Snapshots: `snapshot_positions[k]` is the position snapshot k was saved at (-1
// or missing: never saved); a snapshot id outside [0, capacity.num_snapshots), a restore of a
// snapshot never saved, a restore whose start_pos is 0 or differs from the saved position, and
// two saves into one snapshot in the step are InvalidArgument naming the sequence and the id.
[[nodiscard]] absl::Status ValidateStepPlan(const core::ModelConfig& config,
                                            const StateCapacity& capacity, int64_t layer_begin,
                                            int64_t layer_end, const StepPlan& plan,
                                            absl::Span<const int64_t> snapshot_positions = {});

}  // namespace tandem::model
