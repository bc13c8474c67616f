// ReplicaSupervisor: the worker group behind one coordinator, kept alive (issue 12; DESIGN.md §8).
//
// It owns the group (a worker::LocalCluster: local worker processes, or remote ones joined by
// address), is the engine's StepExecutor, and rebuilds the group whenever the engine turns
// RECOVERING (the heartbeat declared a worker dead or frozen, a step failed or passed its
// deadline):
//   1. waits until the engine has forgotten the failed group's plans (Engine::WaitQuiesced);
//   2. discards the old group: local workers are SIGKILLed (one may be frozen), remote workers are
//      left running;
//   3. starts a new group with the same coordinator id, so every worker is claimed again at a new
//      epoch at once (a restarted worker comes back on its address, a frozen one once it thaws),
//      with a new rendezvous for the collectives and the pipeline transport, and reloads the
//      weights; an attempt that fails is retried every retry_interval until one succeeds or Stop;
//   4. calls Engine::Resume: health SERVING again and the requeued requests run on.
// The coordinator process keeps running throughout and keeps accepting requests (the engine
// queues them). Submit/Await/Poll come from the engine thread only; recovery runs on its own
// thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/engine.h"
#include "worker/local_cluster.h"

namespace tandem::replica {

struct ReplicaSupervisorOptions {
  // Its coordinator_id is filled in if empty; its on_loading and on_rank_loaded report the first
  // group's load only (Start's), not the rebuilds'.
  worker::LocalClusterOptions cluster;
  int max_in_flight = 1;  // step plans in flight (one per pipeline stage)
  absl::Duration retry_interval = absl::Seconds(1);  // between failed rebuild attempts
};

class ReplicaSupervisor final : public coordinator::StepExecutor {
 public:
  // Starts the first group (blocking; its failure is the caller's error).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ReplicaSupervisor>> Start(
      ReplicaSupervisorOptions options);
  ~ReplicaSupervisor() override;  // Stop(), then the group is torn down

  // Watches `engine` (which must use this object as its executor and outlive Stop): failures of
  // the group are reported to it, and its RECOVERING state starts a rebuild. Call once.
  void Attach(coordinator::Engine* engine);
  // Ends the recovery thread and the failure reports (an attempt in progress finishes first).
  void Stop();

  // StepExecutor (the engine thread).
  int max_in_flight() const override { return options_.max_in_flight; }
  absl::Status Submit(::tandem::worker::v1::StepRequest request) override;
  absl::StatusOr<::tandem::worker::v1::StepResponse> Await() override;
  absl::StatusOr<std::optional<::tandem::worker::v1::StepResponse>> Poll(
      absl::Duration max_wait) override;

  // Every rank's Info as of the first group's Load (capacities, capabilities).
  const std::vector<::tandem::worker::v1::InfoResponse>& infos() const { return infos_; }
  // The local worker processes of the current group (empty with remote workers).
  std::vector<int> pids() const;
  uint64_t epoch() const;
  int64_t rebuilds() const { return rebuilds_.load(); }

 private:
  explicit ReplicaSupervisor(ReplicaSupervisorOptions options) : options_(std::move(options)) {}
  void RecoveryLoop();
  // One rebuild: the old group goes, a new one is started (retrying) and handed to the engine.
  void Rebuild();
  // The new group's capacities must be those the engine was built for.
  absl::Status CheckSameShape(const worker::LocalCluster& group) const;
  void WatchGroup(worker::LocalCluster* group);

  ReplicaSupervisorOptions options_;
  std::vector<::tandem::worker::v1::InfoResponse> infos_;
  coordinator::Engine* engine_ = nullptr;

  mutable absl::Mutex group_mu_;  // the current group; held by the executor calls and the swap
  std::unique_ptr<worker::LocalCluster> group_ ABSL_GUARDED_BY(group_mu_);

  std::mutex mu_;  // recovery signalling
  std::condition_variable cv_;
  bool recover_ = false;  // under mu_: the engine turned RECOVERING
  bool stop_ = false;     // under mu_
  std::thread thread_;
  std::atomic<int64_t> rebuilds_{0};
};

}  // namespace tandem::replica
