// Model statistics: parameter counts, weight bytes and per-sequence state sizes, for the whole
// model or for one rank of a tensor-/pipeline-parallel layout (what `tandem inspect` prints and
// what the layer partition balances). Pure functions of the config; thread-safe.
//
// Under tensor parallelism of size tp, a rank holds 1/tp of every head, group, conv channel, MLP
// column and vocabulary row; RMSNorm weights (layers.i.norm, norm_f) are replicated on every rank.
// The embedding lives on the first pipeline stage, norm_f and lm_head on the last.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "sharding/layer_range.h"
#include "sharding/parallel_config.h"

namespace tandem::sharding {

struct ModelStats {
  int64_t parameters = 0;
  int64_t weight_bytes = 0;  // parameters x the size of config.torch_dtype
  int64_t mamba_layers = 0;
  int64_t attention_layers = 0;
  int64_t mlp_layers = 0;
  // SSM state [heads, head_dim, d_state] per Mamba layer, kept in fp32.
  int64_t ssm_state_bytes_per_sequence = 0;
  // Conv state [conv_dim, conv_kernel - 1] (pre-activation xBC rows) per Mamba layer, in the
  // model dtype (config.torch_dtype).
  int64_t conv_state_bytes_per_sequence = 0;
  // K and V, [num_key_value_heads, head_dim] each per attention layer, in the model dtype.
  int64_t kv_bytes_per_token = 0;

  bool operator==(const ModelStats&) const = default;
};

// Parameters of one layer of `kind` held by one of `tp` ranks (its pre-norm included).
int64_t LayerParameters(const core::ModelConfig& config, core::LayerKind kind, int tp = 1);

// One rank's share of layers `layers`, split `tp` ways; the embedding when `first_stage`,
// norm_f and lm_head when `last_stage` (a tied lm_head counts once when both are set).
// Requires tp to divide the split dimensions (ParallelConfig::Validate).
ModelStats RankStats(const core::ModelConfig& config, int tp, LayerRange layers, bool first_stage,
                     bool last_stage);

ModelStats WholeModelStats(const core::ModelConfig& config);

struct StageStats {
  int stage = 0;
  LayerRange layers;
  ModelStats per_rank;  // what each of the stage's tp ranks holds
};

// Per-stage, per-rank statistics for `parallel` with the given layer partition (one range per
// stage, as from BalancedPartition). Fails if `parallel` is invalid for `config` or the
// partition does not match it.
[[nodiscard]] absl::StatusOr<std::vector<StageStats>> ComputeStageStats(
    const core::ModelConfig& config, const ParallelConfig& parallel,
    const std::vector<LayerRange>& partition);

}  // namespace tandem::sharding
