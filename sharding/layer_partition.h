// Pipeline-parallel layer partitions: contiguous, non-empty layer ranges, one per stage.
//
// BalancedPartition minimises the largest stage cost under a simple cost model (bytes a stage
// touches to decode one token of one full-context sequence):
//   Mamba layer      weights + SSM state (fp32) + conv state
//   attention layer  weights + KV cache of max_position_embeddings tokens
//   MLP layer        weights
//   first stage      + one embedding row (the lookup reads only the rows it needs)
//   last stage       + norm_f + lm_head weights
// (weights in config.torch_dtype, tp = 1; TP divides every term but the small replicated norms,
// so the balance does not depend on tp). Ties resolve deterministically. Pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "sharding/layer_range.h"

namespace tandem::sharding {

struct PartitionCosts {
  std::vector<int64_t> layer;  // per layer index
  int64_t first_stage_extra = 0;
  int64_t last_stage_extra = 0;
};

PartitionCosts ComputePartitionCosts(const core::ModelConfig& config);

// Cost of each stage of `partition` under `costs` (stage 0 and the last stage with extras).
std::vector<int64_t> StageCosts(const PartitionCosts& costs,
                                const std::vector<LayerRange>& partition);

// `pp` contiguous non-empty stages minimising the largest stage cost. InvalidArgument when pp is
// not in [1, num_hidden_layers].
[[nodiscard]] absl::StatusOr<std::vector<LayerRange>> BalancedPartition(
    const core::ModelConfig& config, int pp);

// An explicit partition from per-stage layer counts (e.g. {4, 4, 3}); each count >= 1 and the
// counts summing to num_hidden_layers.
[[nodiscard]] absl::StatusOr<std::vector<LayerRange>> PartitionFromSizes(
    const core::ModelConfig& config, const std::vector<int64_t>& sizes);

}  // namespace tandem::sharding
