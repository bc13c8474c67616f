// Backend choice for the in-process runs of `tandem logits` / `tandem generate` (--backend).
//
// "cpu" runs model::NemotronHModel (model/local_runner.h); "cuda" runs CudaNemotronHModel
// (model/cuda/cuda_model.h: compiled, never run on a GPU — needs device validation) with the same
// single-sequence allocation (slot 0, blocks 0..n-1 of 16 tokens) and host-side sampling
// (kernels::cpu::Sample on the returned logits). This library is built in every configuration:
// without the CUDA backend, or without a device, the CUDA entry points return the reason from
// kernels::BackendRegistry.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tensor.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"

namespace tandem::model {

// OK when `backend` ("cpu" or "cuda") can run in this process; otherwise NotFound (unknown, or
// not compiled into this build) or FailedPrecondition (no usable device), naming the reason.
[[nodiscard]] absl::Status CheckBackend(absl::string_view backend);

// PromptLogits / Generate of model/local_runner.h on the CUDA model loaded from `dir`.
[[nodiscard]] absl::StatusOr<core::Tensor> CudaPromptLogits(const std::string& dir,
                                                            const ModelOptions& options,
                                                            const std::vector<int32_t>& prompt);
[[nodiscard]] absl::StatusOr<std::vector<int32_t>> CudaGenerate(const std::string& dir,
                                                                const ModelOptions& options,
                                                                const std::vector<int32_t>& prompt,
                                                                const GenerateOptions& generate);

}  // namespace tandem::model
