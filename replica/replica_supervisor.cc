#include "replica/replica_supervisor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "core/status.h"

namespace tandem::replica {

namespace pb = ::tandem::worker::v1;

absl::StatusOr<std::unique_ptr<ReplicaSupervisor>> ReplicaSupervisor::Start(
    ReplicaSupervisorOptions options) {
  if (options.cluster.coordinator_id.empty()) {
    ASSIGN_OR_RETURN(options.cluster.coordinator_id, worker::NewCoordinatorId());
  }
  auto supervisor = std::unique_ptr<ReplicaSupervisor>(new ReplicaSupervisor(std::move(options)));
  ASSIGN_OR_RETURN(std::unique_ptr<worker::LocalCluster> group,
                   worker::LocalCluster::Start(supervisor->options_.cluster));
  supervisor->infos_ = group->infos();
  // The start callbacks report the first load only; a rebuild shows as the engine's RECOVERING.
  supervisor->options_.cluster.on_loading = nullptr;
  supervisor->options_.cluster.on_rank_loaded = nullptr;
  absl::MutexLock lock(&supervisor->group_mu_);
  supervisor->group_ = std::move(group);
  return supervisor;
}

ReplicaSupervisor::~ReplicaSupervisor() {
  Stop();
  absl::MutexLock lock(&group_mu_);
  group_.reset();
}

void ReplicaSupervisor::Attach(coordinator::Engine* engine) {
  engine_ = engine;
  engine_->AddStateListener([this](bool ready, const std::string&) {
    if (ready) return;
    std::lock_guard<std::mutex> lock(mu_);
    recover_ = true;
    cv_.notify_all();
  });
  {
    absl::MutexLock lock(&group_mu_);
    WatchGroup(group_.get());
  }
  thread_ = std::thread([this] { RecoveryLoop(); });
}

void ReplicaSupervisor::WatchGroup(worker::LocalCluster* group) {
  // The heartbeat's verdict (a worker died or froze) fails the engine with no step sent.
  coordinator::Engine* engine = engine_;
  group->SetOnFailure([engine](const absl::Status& failure) { engine->Fail(failure.ToString()); });
}

void ReplicaSupervisor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&group_mu_);
  if (group_) group_->SetOnFailure(nullptr);
}

std::vector<int> ReplicaSupervisor::pids() const {
  absl::MutexLock lock(&group_mu_);
  return group_ ? group_->pids() : std::vector<int>();
}

uint64_t ReplicaSupervisor::epoch() const {
  absl::MutexLock lock(&group_mu_);
  return group_ ? group_->credentials().epoch : 0;
}

absl::Status ReplicaSupervisor::Submit(pb::StepRequest request) {
  absl::MutexLock lock(&group_mu_);
  if (!group_) return absl::UnavailableError("the worker group is being rebuilt");
  return group_->Submit(std::move(request));
}

absl::StatusOr<pb::StepResponse> ReplicaSupervisor::Await() {
  absl::MutexLock lock(&group_mu_);
  if (!group_) return absl::UnavailableError("the worker group is being rebuilt");
  return group_->Await();
}

absl::StatusOr<std::optional<pb::StepResponse>> ReplicaSupervisor::Poll(absl::Duration max_wait) {
  absl::MutexLock lock(&group_mu_);
  if (!group_) return absl::UnavailableError("the worker group is being rebuilt");
  return group_->Poll(max_wait);
}

void ReplicaSupervisor::RecoveryLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || recover_; });
      if (stop_) return;
      recover_ = false;
    }
    Rebuild();
  }
}

absl::Status ReplicaSupervisor::CheckSameShape(const worker::LocalCluster& group) const {
  const coordinator::EngineOptions& o = engine_->options();
  for (int r = 0; r < group.world_size(); ++r) {
    const pb::InfoResponse& info = group.infos().at(r);
    if (info.capacity().num_slots() < o.scheduler.num_slots ||
        (info.capacity().num_blocks() > 0 &&
         info.capacity().num_blocks() < o.scheduler.num_blocks) ||
        info.capacity().num_snapshots() < o.scheduler.num_snapshots ||
        info.capabilities().vocab_size() != o.limits.vocab_size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "worker rank ", r, " came back with ", info.capacity().num_slots(), " slots, ",
          info.capacity().num_blocks(), " blocks, ", info.capacity().num_snapshots(),
          " snapshots and a vocabulary of ", info.capabilities().vocab_size(),
          "; the coordinator serves ", o.scheduler.num_slots, " slots, ", o.scheduler.num_blocks,
          " blocks, ", o.scheduler.num_snapshots, " snapshots and ", o.limits.vocab_size,
          " tokens"));
    }
  }
  return absl::OkStatus();
}

void ReplicaSupervisor::Rebuild() {
  const absl::Time began = absl::Now();
  // 1. No plan of the failed group may be in flight when it goes.
  while (!engine_->WaitQuiesced(absl::Milliseconds(100))) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
  }
  // 2. The old group goes (its frozen or dead workers with it, when they are ours).
  std::unique_ptr<worker::LocalCluster> old;
  {
    absl::MutexLock lock(&group_mu_);
    old = std::move(group_);
  }
  if (old) {
    old->SetOnFailure(nullptr);
    old->Discard();
    old.reset();
  }
  // 3. A new group: same coordinator id, new epoch, new rendezvous, weights reloaded.
  for (int attempt = 1;; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    TANDEM_LOG(INFO) << "rebuilding the worker group (attempt " << attempt << ")";
    absl::StatusOr<std::unique_ptr<worker::LocalCluster>> group =
        worker::LocalCluster::Start(options_.cluster);
    absl::Status ok = group.ok() ? CheckSameShape(**group) : group.status();
    if (ok.ok()) {
      WatchGroup(group->get());
      const uint64_t epoch = (*group)->credentials().epoch;
      {
        absl::MutexLock lock(&group_mu_);
        group_ = std::move(*group);
      }
      // 4. Serving again.
      const absl::Status resumed = engine_->Resume();
      if (!resumed.ok()) {
        TANDEM_LOG(ERROR) << "cannot resume the engine: " << resumed;
        return;
      }
      ++rebuilds_;
      TANDEM_LOG(INFO) << "the worker group is back at epoch " << epoch << " after "
                       << absl::FormatDuration(absl::Now() - began) << " (" << attempt
                       << (attempt == 1 ? " attempt)" : " attempts)");
      return;
    }
    TANDEM_LOG(WARNING) << "rebuilding the worker group failed: " << ok << "; retrying in "
                        << absl::FormatDuration(options_.retry_interval);
    if (group.ok()) (*group)->Discard();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.retry_interval),
                 [this] { return stop_; });
  }
}

}  // namespace tandem::replica
