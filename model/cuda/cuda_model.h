// A Nemotron-H model on one CUDA GPU (tp = 1, every layer of the range on the device), with the
// contract of the CPU NemotronHModel: Load, AllocateState, ValidatePlan, Step(plan) -> StepLogits.
//
// STATUS: compiled, never run on a GPU — needs device validation (docs/cuda.md).
//
// Weights are uploaded once, in the checkpoint's element type (bf16 or f32; A_log, D and dt_bias
// in f32). State: conv state in the element type, SSM state f32, paged K/V caches in the element
// type. A step validates the plan (the CPU rules), packs all metadata into one pinned buffer, makes
// one asynchronous host-to-device copy, enqueues embedding -> per block fused residual+RMSNorm ->
// mixer -> final residual+norm_f -> gather of the requested rows -> lm_head (-> f32), one
// device-to-host copy of the logits and one stream synchronisation. Activation workspaces are
// preallocated and grow only at the start of a step; nothing allocates or synchronises inside the
// layers. The math and bf16 rounding points are the CPU model's (each kernel stores in the element
// type where the CPU model rounds). Pure-decode steps (every sequence one token continuing earlier
// state) use the decode kernels; any other step the varlen prefill kernels for all sequences.
// Not thread-safe: one step at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/model_config.h"
#include "core/safetensors.h"
#include "model/mixer.h"
#include "model/nemotron_h_model.h"
#include "model/step_plan.h"

namespace tandem::model::cuda {

// Random weights of real shapes, for benchmarks (--synthetic): the first `num_layers` layers of
// the config's pattern (0 = all), generated on the host one tensor at a time
// (model/cuda/synthetic_weights.h: all cores, uploaded, then dropped).
struct SyntheticOptions {
  core::DType dtype = core::DType::kBF16;  // kBF16 or kF32
  uint64_t seed = 0;
  int64_t num_layers = 0;
};

// The first `num_layers` layers of `config` as a config of its own (0 = unchanged).
[[nodiscard]] absl::StatusOr<core::ModelConfig> TruncateLayers(const core::ModelConfig& config,
                                                               int64_t num_layers);

class CudaNemotronHModel {
 public:
  // Only options.tp.size == 1 and the whole layer range are supported (tp > 1 and pipeline
  // stages are InvalidArgument / Unimplemented). `device` is the CUDA ordinal.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<CudaNemotronHModel>> Load(
      const std::string& dir, const ModelOptions& options, int device = 0);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<CudaNemotronHModel>> Load(
      const core::ModelConfig& config, const core::Checkpoint& checkpoint,
      const ModelOptions& options, int device = 0);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<CudaNemotronHModel>> LoadSynthetic(
      const core::ModelConfig& config, const SyntheticOptions& synthetic, int device = 0);
  ~CudaNemotronHModel();
  CudaNemotronHModel(const CudaNemotronHModel&) = delete;
  CudaNemotronHModel& operator=(const CudaNemotronHModel&) = delete;

  const core::ModelConfig& config() const;
  bool rounds_to_bf16() const;
  bool has_attention() const;
  uint64_t weight_bytes() const;
  uint64_t state_bytes() const;

  // Allocates zeroed device state for `capacity` (replacing earlier state).
  [[nodiscard]] absl::Status AllocateState(const StateCapacity& capacity);
  const StateCapacity& capacity() const;
  // Preallocates the activation workspace for steps of up to `tokens` tokens and `rows` logits
  // rows (a larger step grows it at its start).
  [[nodiscard]] absl::Status Reserve(int64_t tokens, int64_t rows);

  [[nodiscard]] absl::Status ValidatePlan(const StepPlan& plan) const;
  [[nodiscard]] absl::StatusOr<StepLogits> Step(const StepPlan& plan);

 private:
  struct Impl;
  explicit CudaNemotronHModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::model::cuda
