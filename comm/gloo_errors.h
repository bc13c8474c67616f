// Maps Gloo's exceptions to absl::Status (the one place that knows them).
//
// Gloo reports failures by throwing: gloo::IoException (a peer closed its connection, a read or
// write failed, or an operation timed out), gloo::InvalidOperationException, gloo::EnforceNotMet
// (a broken internal invariant) and std::system_error. GlooCall runs a Gloo call and turns any of
// them into a Status: timeouts -> DEADLINE_EXCEEDED, I/O and peer failures -> UNAVAILABLE,
// invalid operations -> INVALID_ARGUMENT, anything else -> INTERNAL. StoreException carries a
// Status thrown through Gloo from our rendezvous store and comes back out unchanged.
// Stateless, thread-safe.
#pragma once

#include <exception>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gloo/common/error.h"

namespace tandem::comm::internal {

// Thrown by the Gloo store adapter so that a store failure reaches the caller as its own Status.
class StoreException : public gloo::IoException {
 public:
  explicit StoreException(absl::Status status)
      : gloo::IoException(std::string(status.message())), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// `error` must be non-null. `what` names the operation ("gloo rank 1/4 allreduce of 4096 floats").
absl::Status GlooExceptionToStatus(std::exception_ptr error, absl::string_view what);

template <typename F>
absl::Status GlooCall(absl::string_view what, F&& f) {
  try {
    std::forward<F>(f)();
    return absl::OkStatus();
  } catch (...) {
    return GlooExceptionToStatus(std::current_exception(), what);
  }
}

}  // namespace tandem::comm::internal
