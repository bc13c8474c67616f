// The attention mixer of a `*` block (model spec §2.5): causal GQA over a paged KV cache, no
// positional encoding, scale 1/sqrt(head_dim).
//
// Under tensor parallelism rank r of t holds query heads [r*Hq/t, ...) and KV heads
// [r*Hkv/t, ...) (the GQA ratio is kept locally), q/k/v by rows, o_proj by column; its output is a
// partial sum over ranks. State: K and V caches [num_blocks, block_size, kv_heads_local,
// head_dim] f32, addressed through each sequence's block table.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "model/mixer.h"
#include "model/weight_loader.h"

namespace tandem::model {

class AttentionMixer : public Mixer {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AttentionMixer>> Load(
      const core::ModelConfig& config, const TensorParallel& tp, const std::string& prefix,
      WeightLoader& loader);

  absl::Status Forward(const ForwardContext& ctx, const float* x, float* out) override;
  void AllocateState(const StateCapacity& capacity) override;
  uint64_t weight_bytes() const override;
  uint64_t state_bytes() const override;

 private:
  AttentionMixer() = default;
  int64_t hidden_ = 0, q_heads_ = 0, kv_heads_ = 0, head_dim_ = 0;
  core::Tensor q_proj_, k_proj_, v_proj_, o_proj_;
  core::Tensor k_cache_, v_cache_;
  StateCapacity capacity_;
};

}  // namespace tandem::model
