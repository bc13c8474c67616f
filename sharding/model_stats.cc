#include "sharding/model_stats.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace tandem::sharding {

using core::LayerKind;
using core::ModelConfig;

int64_t LayerParameters(const ModelConfig& c, LayerKind kind, int tp) {
  const int64_t h = c.hidden_size;
  const int64_t norm = h;  // replicated pre-norm
  switch (kind) {
    case LayerKind::kMamba: {
      const int64_t conv = c.conv_dim() / tp;
      return norm + c.in_proj_dim() / tp * h  // in_proj
             + conv * c.conv_kernel + conv    // conv1d weight + bias
             + 3 * (c.mamba_num_heads / tp)   // A_log, D, dt_bias
             + c.d_inner() / tp               // gated norm
             + h * (c.d_inner() / tp);        // out_proj
    }
    case LayerKind::kAttention:
      return norm + 2 * (c.q_dim() / tp) * h + 2 * (c.kv_dim() / tp) * h;
    case LayerKind::kMlp:
      return norm + 2 * (c.intermediate_size / tp) * h;
  }
  return 0;
}

ModelStats RankStats(const ModelConfig& c, int tp, LayerRange layers, bool first_stage,
                     bool last_stage) {
  ModelStats s;
  const int64_t dtype_bytes = static_cast<int64_t>(core::DTypeSize(c.torch_dtype));
  const int64_t vocab_rows = c.vocab_size / tp;
  if (first_stage) s.parameters += vocab_rows * c.hidden_size;
  if (last_stage) {
    s.parameters += c.hidden_size;  // norm_f
    if (!(c.tie_word_embeddings && first_stage)) s.parameters += vocab_rows * c.hidden_size;
  }
  for (int64_t i = layers.begin; i < layers.end; ++i) {
    const LayerKind kind = c.layers[i];
    s.parameters += LayerParameters(c, kind, tp);
    switch (kind) {
      case LayerKind::kMamba:
        ++s.mamba_layers;
        s.ssm_state_bytes_per_sequence +=
            (c.mamba_num_heads / tp) * c.mamba_head_dim * c.ssm_state_size * 4;
        s.conv_state_bytes_per_sequence += (c.conv_dim() / tp) * (c.conv_kernel - 1) * dtype_bytes;
        break;
      case LayerKind::kAttention:
        ++s.attention_layers;
        s.kv_bytes_per_token += 2 * (c.num_key_value_heads / tp) * c.head_dim * dtype_bytes;
        break;
      case LayerKind::kMlp:
        ++s.mlp_layers;
        break;
    }
  }
  s.weight_bytes = s.parameters * dtype_bytes;
  return s;
}

ModelStats WholeModelStats(const ModelConfig& c) {
  return RankStats(c, 1, LayerRange{0, c.num_hidden_layers}, true, true);
}

absl::StatusOr<std::vector<StageStats>> ComputeStageStats(
    const ModelConfig& c, const ParallelConfig& parallel,
    const std::vector<LayerRange>& partition) {
  RETURN_IF_ERROR(parallel.Validate(c));
  RETURN_IF_ERROR(ValidatePartition(partition, parallel.pp, c.num_hidden_layers));
  std::vector<StageStats> stages;
  for (int s = 0; s < parallel.pp; ++s) {
    stages.push_back(StageStats{
        s, partition[s], RankStats(c, parallel.tp, partition[s], s == 0, s == parallel.pp - 1)});
  }
  return stages;
}

}  // namespace tandem::sharding
