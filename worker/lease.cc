#include "worker/lease.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tandem::worker {

std::string WorkerLease::Describe(absl::Time now) const {
  const absl::Duration left = std::max(absl::ZeroDuration(), expires_ - now);
  return absl::StrCat("this worker is owned by coordinator '", owner_, "' at epoch ", epoch_,
                      left > absl::ZeroDuration()
                          ? absl::StrCat(", whose lease runs another ", absl::FormatDuration(left))
                          : std::string(", whose lease lapsed"));
}

absl::Status WorkerLease::Claim(absl::string_view coordinator_id, uint64_t epoch, absl::Time now) {
  if (coordinator_id.empty()) {
    return absl::InvalidArgumentError("coordinator_id: empty (a claim must name its coordinator)");
  }
  absl::MutexLock lock(&mu_);
  if (!owner_.empty() && owner_ == coordinator_id && epoch >= epoch_) {
    // The owner renews, or moves itself to a newer epoch (a retried group-wide claim).
    epoch_ = epoch;
    expires_ = now + ttl_;
    return absl::OkStatus();
  }
  if (!owner_.empty() && now < expires_) {
    return absl::FailedPreconditionError(
        absl::StrCat("claim by coordinator '", coordinator_id, "' refused: ", Describe(now)));
  }
  if (epoch <= epoch_) {
    return absl::FailedPreconditionError(
        absl::StrCat("claim by coordinator '", coordinator_id, "' refused: epoch ", epoch,
                     " is not greater than the current epoch ", epoch_, " (read it from Info)"));
  }
  owner_ = std::string(coordinator_id);
  epoch_ = epoch;
  expires_ = now + ttl_;
  return absl::OkStatus();
}

absl::Status WorkerLease::Check(absl::string_view coordinator_id, uint64_t epoch, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (owner_.empty()) {
    return absl::FailedPreconditionError("this worker has no owner: Claim it first");
  }
  if (owner_ != coordinator_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("call from coordinator '", coordinator_id, "' refused: ", Describe(now)));
  }
  if (epoch != epoch_) {
    return absl::FailedPreconditionError(
        absl::StrCat("stale epoch ", epoch, ": this worker's owner is at epoch ", epoch_));
  }
  expires_ = now + ttl_;
  return absl::OkStatus();
}

WorkerLease::State WorkerLease::Get(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  State s;
  s.owner = owner_;
  s.epoch = epoch_;
  s.remaining =
      owner_.empty() ? absl::ZeroDuration() : std::max(absl::ZeroDuration(), expires_ - now);
  return s;
}

}  // namespace tandem::worker
