#include "comm/nccl_errors.h"

#include "absl/strings/str_cat.h"

namespace tandem::comm::internal {

absl::Status NcclResultToStatus(ncclResult_t result, absl::string_view what, ncclComm_t comm) {
  if (result == ncclSuccess) return absl::OkStatus();
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (result) {
    case ncclSystemError:
    case ncclRemoteError:
    case ncclInProgress:
      code = absl::StatusCode::kUnavailable;
      break;
    case ncclInvalidArgument:
    case ncclInvalidUsage:
      code = absl::StatusCode::kInvalidArgument;
      break;
    default:
      break;
  }
  const char* last = ncclGetLastError(comm);
  return absl::Status(
      code,
      absl::StrCat(what, ": ", ncclGetErrorString(result), " (nccl ", static_cast<int>(result), ")",
                   last != nullptr && *last != '\0' ? ": " : "", last != nullptr ? last : ""));
}

absl::Status CudaErrorToStatus(cudaError_t error, absl::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (error) {
    case cudaErrorMemoryAllocation:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
      code = absl::StatusCode::kInvalidArgument;
      break;
    default:
      break;
  }
  return absl::Status(
      code, absl::StrCat(what, ": ", cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
}

}  // namespace tandem::comm::internal
