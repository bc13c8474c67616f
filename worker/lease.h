// WorkerLease: which coordinator owns this worker, at which epoch, and until when (DESIGN.md §8).
//
// A worker serves one coordinator at a time. Claim(id, epoch, now) grants ownership when there is
// no owner, or the owner's lease lapsed (no Renew within ttl), and epoch > the current epoch; a
// claim by the current owner at its current or a greater epoch is granted (and renews). Check(id,
// epoch, now) admits a call only from the owner at its current epoch, renewing the lease: a lapsed
// lease still admits its owner until another coordinator claims the worker. Errors are
// FAILED_PRECONDITION and name the owner, its epoch and the time left on its lease. Pure (the
// caller passes the time), so it is unit-tested without processes. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem::worker {

class WorkerLease {
 public:
  explicit WorkerLease(absl::Duration ttl) : ttl_(ttl) {}

  [[nodiscard]] absl::Status Claim(absl::string_view coordinator_id, uint64_t epoch,
                                   absl::Time now);
  // Admits (and renews) a call of the owner at its current epoch.
  [[nodiscard]] absl::Status Check(absl::string_view coordinator_id, uint64_t epoch,
                                   absl::Time now);

  struct State {
    std::string owner;  // "" = none
    uint64_t epoch = 0;
    absl::Duration remaining;  // >= 0
  };
  State Get(absl::Time now) const;
  absl::Duration ttl() const { return ttl_; }

 private:
  std::string Describe(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration ttl_;
  mutable absl::Mutex mu_;
  std::string owner_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time expires_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace tandem::worker
