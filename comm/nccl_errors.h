// Maps ncclResult_t and cudaError_t to absl::Status (the one place that knows them). Stateless.
//   NCCL: system / remote errors -> UNAVAILABLE (a peer or the network failed),
//         invalid argument / usage -> INVALID_ARGUMENT, unhandled CUDA error -> INTERNAL,
//         internal -> INTERNAL, in progress -> UNAVAILABLE (only seen where it should not be).
//   CUDA: out of memory -> RESOURCE_EXHAUSTED, no device / insufficient driver ->
//         FAILED_PRECONDITION, invalid value / device -> INVALID_ARGUMENT, others -> INTERNAL.
// Only compiled when TANDEM_HAVE_NCCL; include it from .cc files only (it pulls CUDA headers).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem::comm::internal {

// OK for ncclSuccess. `comm` (may be null) adds NCCL's last error text to the message.
absl::Status NcclResultToStatus(ncclResult_t result, absl::string_view what,
                                ncclComm_t comm = nullptr);
absl::Status CudaErrorToStatus(cudaError_t error, absl::string_view what);

}  // namespace tandem::comm::internal
