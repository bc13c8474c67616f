// The Mamba-2 mixer of an `M` block (model spec §2.4), on this rank's heads.
//
// Under tensor parallelism rank r of t holds heads [r*h/t, (r+1)*h/t) and exactly the B/C groups
// they use: in_proj rows by segment (z | x | B | C | dt), conv1d channels by segment (x | B | C),
// A_log/D/dt_bias by head, the gated norm's weight by channel (its groups stay whole since
// t divides n_groups), out_proj by column. Its output is a partial sum over ranks.
// State per slot: the conv state [conv_dim_local, K-1] (raw pre-activation xBC rows) and the SSM
// state [heads_local, head_dim, state] in f32; the pools hold num_slots + num_snapshots rows
// (prefix-cache snapshot k is row num_slots + k).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "model/mixer.h"
#include "model/weight_loader.h"

namespace tandem::model {

class Mamba2Mixer : public Mixer {
 public:
  // `prefix` is "backbone.layers.<i>.mixer".
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Mamba2Mixer>> Load(
      const core::ModelConfig& config, const TensorParallel& tp, const std::string& prefix,
      WeightLoader& loader);

  absl::Status Forward(const ForwardContext& ctx, const float* x, float* out) override;
  void AllocateState(const StateCapacity& capacity) override;
  uint64_t weight_bytes() const override;
  uint64_t state_bytes() const override;
  void CopyStateRow(int64_t from_row, int64_t to_row) override;
  uint64_t state_row_bytes() const override;

  // Chunk size for the chunked SSD scan; 0 (default) uses the sequential recurrence, which is
  // the fastest form on CPUs. Both compute the same function (tests check it).
  void set_ssd_chunk_size(int64_t chunk) { ssd_chunk_size_ = chunk; }

 private:
  Mamba2Mixer() = default;
  int64_t hidden_ = 0, heads_ = 0, head_dim_ = 0, groups_ = 0, state_ = 0, kernel_ = 0;
  int64_t d_inner_ = 0, conv_dim_ = 0, in_dim_ = 0, group_size_ = 0;
  float eps_ = 1e-5f;
  int64_t ssd_chunk_size_ = 0;
  core::Tensor in_proj_, conv_w_, conv_b_, a_log_, d_, dt_bias_, norm_w_, out_proj_;
  core::Tensor conv_state_, ssm_state_;
  int64_t num_slots_ = 0;
  int64_t num_rows_ = 0;  // num_slots_ + snapshots
};

}  // namespace tandem::model
