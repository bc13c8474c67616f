#include "worker/lease_keeper.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace tandem::worker {

namespace pb = ::tandem::worker::v1;

LeaseKeeper::LeaseKeeper(std::vector<pb::Worker::Stub*> stubs, auth::GroupCredentials credentials,
                         absl::Duration period, OnFailure on_failure, absl::Duration call_timeout)
    : stubs_(std::move(stubs)),
      credentials_(std::move(credentials)),
      period_(period),
      call_timeout_(call_timeout > absl::ZeroDuration() ? call_timeout : period),
      started_(absl::Now()),
      on_failure_(std::move(on_failure)),
      last_renewed_(stubs_.size(), absl::InfinitePast()) {
  thread_ = std::thread([this] { Loop(); });
}

LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Time LeaseKeeper::last_renewed(int rank) const {
  absl::MutexLock lock(&mu_);
  return last_renewed_.at(rank);
}

int64_t LeaseKeeper::beats() const {
  absl::MutexLock lock(&mu_);
  return beats_;
}

void LeaseKeeper::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    const absl::Time next = absl::Now() + period_;
    mu_.Unlock();
    Beat();
    mu_.Lock();
    ++beats_;
    mu_.AwaitWithDeadline(absl::Condition(&stop_), next);
  }
}

// One Health call per rank, all in flight at once (callback API), each bounded by call_timeout_.
void LeaseKeeper::Beat() {
  const int n = static_cast<int>(stubs_.size());
  struct Call {
    grpc::ClientContext context;
    pb::HealthRequest request;
    pb::HealthResponse response;
    grpc::Status status;
    bool done = false;
  };
  std::vector<std::unique_ptr<Call>> calls(n);
  absl::Mutex done_mu;
  int remaining = n;
  for (int r = 0; r < n; ++r) {
    calls[r] = std::make_unique<Call>();
    Call* c = calls[r].get();
    c->context.set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
    credentials_.AttachTo(&c->context);
    stubs_[r]->async()->Health(&c->context, &c->request, &c->response,
                               [c, &done_mu, &remaining](grpc::Status s) {
                                 absl::MutexLock lock(&done_mu);
                                 c->status = std::move(s);
                                 c->done = true;
                                 --remaining;
                               });
  }
  {
    absl::MutexLock lock(&done_mu);
    done_mu.Await(absl::Condition(
        +[](int* left) { return *left == 0; }, &remaining));
  }
  const absl::Time now = absl::Now();
  for (int r = 0; r < n; ++r) {
    const grpc::Status& s = calls[r]->status;
    if (s.ok()) {
      absl::MutexLock lock(&mu_);
      last_renewed_[r] = now;
      continue;
    }
    if (on_failure_) {
      absl::Time since;
      {
        absl::MutexLock lock(&mu_);
        since = std::max(started_, last_renewed_[r]);
      }
      on_failure_(r,
                  absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                               absl::StrCat("heartbeat: ", s.error_message())),
                  now - since);
    }
  }
}

}  // namespace tandem::worker
