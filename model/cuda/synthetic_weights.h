// Fast random weights of real shapes for benchmarks (--synthetic): one tensor at a time, so a
// caller can upload and drop each before generating the next.
//
// The distributions follow core/tiny_model.h's initialisation (activations stay O(1) through the
// layers): A_log = log(U[1, 16]); dt_bias = softplus^-1(dt), dt log-uniform in [1e-3, 1e-1];
// D = 1 + 0.1 z; norm weights = 1 + 0.05 z; conv1d ~ U(-1/sqrt(K), 1/sqrt(K)); embedding z;
// linear z / sqrt(fan_in) — except that z is a unit-variance UNIFORM variable (not a normal) and
// the generator is splitmix64 over fixed 1 Mi-element chunks filled by all cores, so 8B-sized
// tensors take well under a second. Deterministic in (seed, name), independent of the thread
// count. Not the bytes of core::GenerateWeights. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace tandem::model::cuda {

// The tensor `name` of shape `shape` (as listed by core::ExpectedTensors(config)) in `dtype`
// (kF32 or kBF16; anything else is InvalidArgument).
[[nodiscard]] absl::StatusOr<core::Tensor> SyntheticTensor(const core::ModelConfig& config,
                                                           const std::string& name,
                                                           const core::Shape& shape, uint64_t seed,
                                                           core::DType dtype);

}  // namespace tandem::model::cuda
