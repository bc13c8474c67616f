// LeaseKeeper: the coordinator's heartbeat to its workers (DESIGN.md §8). A thread calls Health
// on every worker every `period`, idle or busy, all in parallel, each call bounded by
// `call_timeout` (zero: `period`); a beat that outlasts the period delays the next one. A worker
// renews its owner's lease on each of them (worker/lease.h), so the lease lives exactly as long as
// this coordinator does. A failed heartbeat (unreachable, timed out, or FAILED_PRECONDITION
// because another coordinator took the worker over) is reported through
// `on_failure(rank, status, silent)` on the keeper's thread, `silent` being how long that rank
// has not answered (since its last success, or since the keeper started); the keeper goes on
// beating. This is the liveness signal failure detection builds on (DESIGN.md §8, "Detect in
// seconds"; LocalCluster declares a rank dead when `silent` passes its liveness timeout).
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "auth/group_identity.h"
#include "tandem/worker/v1/worker.grpc.pb.h"

namespace tandem::worker {

class LeaseKeeper {
 public:
  using OnFailure =
      std::function<void(int rank, const absl::Status& status, absl::Duration silent)>;

  // `stubs` (one per rank) must outlive the keeper.
  LeaseKeeper(std::vector<::tandem::worker::v1::Worker::Stub*> stubs,
              auth::GroupCredentials credentials, absl::Duration period, OnFailure on_failure,
              absl::Duration call_timeout = absl::ZeroDuration());
  ~LeaseKeeper();  // Stop()
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Ends the heartbeat (waits for the beat in progress); idempotent.
  void Stop();
  // When rank's lease was last renewed (InfinitePast before the first success).
  absl::Time last_renewed(int rank) const;
  int64_t beats() const;

 private:
  void Loop();
  void Beat();

  const std::vector<::tandem::worker::v1::Worker::Stub*> stubs_;
  const auth::GroupCredentials credentials_;
  const absl::Duration period_;
  const absl::Duration call_timeout_;
  const absl::Time started_;
  const OnFailure on_failure_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::Time> last_renewed_ ABSL_GUARDED_BY(mu_);
  int64_t beats_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace tandem::worker
