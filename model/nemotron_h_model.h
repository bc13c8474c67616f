// A Nemotron-H model shard on the CPU: a contiguous range of blocks (a pipeline stage; all of them
// by default) on one tensor-parallel rank, with its weights and its slice of the per-sequence
// state, executing step plans.
//
// Forward (model spec §2): stage 0 embeds (vocab-parallel rows + all-reduce); each block computes
// h = h + AllReduce(Mixer(RMSNorm(h))); the last stage applies norm_f and its vocab rows of
// lm_head to the positions that asked for logits. Compute is f32; with a bf16 checkpoint the
// activations are rounded to bf16 where the bf16 reference rounds them (docs/numerics.md).
// Per-sequence results never depend on which other sequences share the step (batch invariance).
// Not thread-safe: one step at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "model/mixer.h"
#include "model/parallel_context.h"
#include "model/step_plan.h"

namespace tandem::model {

struct ModelOptions {
  TensorParallel tp;
  int64_t layer_begin = 0;
  int64_t layer_end = -1;          // -1: through the last layer
  bool reference_kernels = false;  // plain reference kernels (tests, benchmarks)
  int64_t ssd_chunk_size = 0;      // > 0: chunked SSD scan with this chunk size
};

class NemotronHModel {
 public:
  // Opens `dir` (config.json + safetensors), validates the checkpoint against the config and
  // loads this shard's weights.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<NemotronHModel>> Load(
      const std::string& dir, const ModelOptions& options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<NemotronHModel>> Load(
      const core::ModelConfig& config, const core::Checkpoint& checkpoint,
      const ModelOptions& options);

  const core::ModelConfig& config() const { return config_; }
  bool is_first_stage() const { return options_.layer_begin == 0; }
  bool is_last_stage() const { return options_.layer_end == config_.num_hidden_layers; }
  int64_t layer_begin() const { return options_.layer_begin; }
  int64_t layer_end() const { return options_.layer_end; }
  bool has_attention() const;
  int64_t vocab_begin() const { return vocab_begin_; }
  int64_t vocab_local() const { return vocab_local_; }
  bool rounds_to_bf16() const { return round_bf16_; }

  // Allocates (zeroed) state for `capacity` slots, blocks and snapshots in every layer of the
  // shard; every snapshot starts never saved.
  void AllocateState(const StateCapacity& capacity);
  const StateCapacity& capacity() const { return capacity_; }

  // Checks a plan against the config and the allocated capacity: InvalidArgument naming the
  // sequence and the value (token id out of range, empty sequence, position past the maximum,
  // slot or block out of range, a slot used twice, a block table too short, a snapshot id out of
  // range, never saved, restored at another position than it was saved at, or saved twice).
  // Every rank sees every plan and records the same save positions, so all ranks agree.
  [[nodiscard]] absl::Status ValidatePlan(const StepPlan& plan) const;

  // One whole step on a single-stage shard: validate, embed, run all blocks, return the requested
  // logits (this rank's vocabulary rows).
  [[nodiscard]] absl::StatusOr<StepLogits> Step(const StepPlan& plan);

  // Pipeline pieces. `hidden` is [num_tokens, hidden_size]. RunLayers also performs the plan's
  // snapshot copies for this shard's layers: every restore before the layers, every save after
  // them (recording the saved position), so each pipeline stage copies its own layers' state.
  [[nodiscard]] absl::Status Embed(const BatchMetadata& meta, float* hidden);
  [[nodiscard]] absl::Status RunLayers(const BatchMetadata& meta, float* hidden);
  [[nodiscard]] absl::StatusOr<StepLogits> Head(const StepPlan& plan, const float* hidden);

  uint64_t weight_bytes() const;
  uint64_t state_bytes() const;     // the slot pools (SSM/conv slots, KV blocks)
  uint64_t snapshot_bytes() const;  // the snapshot pool: num_snapshots * snapshot_entry_bytes()
  // This shard's Mamba state bytes per slot, i.e. per snapshot entry (0 without Mamba layers).
  uint64_t snapshot_entry_bytes() const;
  // The position snapshot k was last saved at (start_pos + n of the save), -1 if never.
  int64_t snapshot_position(int32_t k) const { return snapshot_positions_[k]; }
  uint64_t checkpoint_bytes_read() const { return checkpoint_bytes_read_; }

 private:
  NemotronHModel() = default;
  ForwardContext Context(const BatchMetadata& meta) const;

  core::ModelConfig config_;
  ModelOptions options_;
  bool round_bf16_ = false;
  int64_t vocab_begin_ = 0, vocab_local_ = 0;
  core::Tensor embedding_;           // [vocab_local, hidden] (first stage)
  core::Tensor norm_f_;              // [hidden] (last stage)
  core::Tensor lm_head_;             // [vocab_local, hidden] (last stage)
  std::vector<core::Tensor> norms_;  // per block of the shard: [hidden]
  std::vector<std::unique_ptr<Mixer>> mixers_;
  StateCapacity capacity_;
  std::vector<int64_t> snapshot_positions_;  // per snapshot: saved position, -1 = never
  uint64_t checkpoint_bytes_read_ = 0;
};

}  // namespace tandem::model
