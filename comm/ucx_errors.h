// Maps UCX's ucs_status_t to absl::Status (the one place that knows them). Stateless.
//   connection reset / endpoint timeout / unreachable / rejected / not connected / I/O error
//     -> UNAVAILABLE;  timed out -> DEADLINE_EXCEEDED;  canceled -> CANCELLED;
//   message truncated -> OUT_OF_RANGE;  no memory / no resource -> RESOURCE_EXHAUSTED;
//   invalid parameter -> INVALID_ARGUMENT;  unsupported -> UNIMPLEMENTED;  others -> INTERNAL.
#pragma once

#include <ucs/type/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem::comm::internal {

// OK for UCS_OK; otherwise "<what>: <UCX's text> (ucs status <n>)" with the mapped code.
absl::Status UcsStatusToStatus(ucs_status_t status, absl::string_view what);

}  // namespace tandem::comm::internal
