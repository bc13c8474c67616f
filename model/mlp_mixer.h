// The MLP mixer of a `-` block (model spec §2.6): down_proj(relu(up_proj(x))^2), no biases.
// Under tensor parallelism rank r of t holds up_proj rows [r*ffn/t, ...) and the matching
// down_proj columns; its output is a partial sum over ranks. No state.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "model/mixer.h"
#include "model/weight_loader.h"

namespace tandem::model {

class MlpMixer : public Mixer {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MlpMixer>> Load(
      const core::ModelConfig& config, const TensorParallel& tp, const std::string& prefix,
      WeightLoader& loader);

  absl::Status Forward(const ForwardContext& ctx, const float* x, float* out) override;
  void AllocateState(const StateCapacity&) override {}
  uint64_t weight_bytes() const override { return up_.nbytes() + down_.nbytes(); }
  uint64_t state_bytes() const override { return 0; }

 private:
  MlpMixer() = default;
  core::Tensor up_, down_;
};

}  // namespace tandem::model
