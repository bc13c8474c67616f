// Engine: the coordinator's request loop. Accepts validated requests, runs the scheduler, sends
// step plans to the workers (through a StepExecutor that drives real worker processes over
// tandem.worker.v1), turns sampled tokens into outputs (streaming detokenizer, stop strings,
// EOS / stop ids / length) and ends every accepted request with exactly one terminal output.
//
// One engine thread owns the scheduler. Submit/Cancel are thread-safe; cancellations, aborts and
// deadlines are applied at the start of the next step, and every ~20 ms while a step is awaited
// (so a step stuck on a frozen worker delays neither a deadline nor an Abort).
//
// Failures and recovery (issue 12, DESIGN.md §8). The engine is READY or RECOVERING. A step that
// fails, a step not answered within its deadline (the step-timeout floor plus a multiple of the
// measured time per token times the plan's tokens), or Fail() from a failure detector turns it
// RECOVERING at once (state listeners run: health NOT_SERVING). The engine thread then forgets
// the plans in flight and sends every running request back to the queue (Scheduler::RequeueAll):
// it is replayed from its prompt plus the tokens already streamed when the group is back, so the
// client sees a pause, not an error (with a seed the continuation is the one an uninterrupted run
// gives, sampling being keyed by seed and position). A request interrupted more than max_replays
// times ends UNAVAILABLE naming the failure. Submit keeps accepting while RECOVERING (up to the
// queue's limits); a request that waits longer than recovery_queue_timeout for a ready group ends
// UNAVAILABLE. Whoever rebuilds the group (replica/replica_supervisor.h) waits for
// WaitQuiesced() (no plan of the failed group is in flight any more), swaps the executor's
// workers and calls Resume().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordinator/engine_observer.h"
#include "coordinator/scheduler.h"
#include "coordinator/validation.h"
#include "tandem/v1/tandem.pb.h"
#include "tandem/worker/v1/worker.pb.h"
#include "tokenizer/tokenizer.h"

namespace tandem::coordinator {

// Executes step plans on every worker of a replica. Plans are answered in the order they were
// submitted; up to max_in_flight() may be outstanding at once (with pipeline parallelism one per
// stage, so every stage works on a different micro-batch). Submit and Await are called from the
// engine thread only.
class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  virtual int max_in_flight() const { return 1; }
  // Sends the plan on its way (it does not wait for the answer).
  [[nodiscard]] virtual absl::Status Submit(::tandem::worker::v1::StepRequest request) = 0;
  // The last stage's answer to the oldest plan in flight.
  [[nodiscard]] virtual absl::StatusOr<::tandem::worker::v1::StepResponse> Await() = 0;
  // Waits at most `max_wait` for that answer: nullopt when it has not come yet. The default waits
  // for it (an executor that answers at once).
  [[nodiscard]] virtual absl::StatusOr<std::optional<::tandem::worker::v1::StepResponse>> Poll(
      absl::Duration /*max_wait*/) {
    absl::StatusOr<::tandem::worker::v1::StepResponse> r = Await();
    if (!r.ok()) return r.status();
    return std::optional<::tandem::worker::v1::StepResponse>(std::move(*r));
  }
};

struct EngineOptions {
  SchedulerConfig scheduler;
  ValidationLimits limits;
  int32_t eos_token_id = -1;
  EngineObserver* observer = nullptr;  // metrics and access logs (may be null; not owned)
  // Failures (see the file comment). A request is replayed at most max_replays times (0: a
  // request running when the group fails ends UNAVAILABLE at once).
  int32_t max_replays = 3;
  // A step's deadline: step_timeout_floor + step_timeout_factor x (measured seconds per token) x
  // the plan's tokens; the first warm-up steps of a group get at least step_timeout_warmup.
  absl::Duration step_timeout_floor = absl::Seconds(10);
  double step_timeout_factor = 10.0;
  absl::Duration step_timeout_warmup = absl::Seconds(60);
  // How long a request may wait for a ready group while the engine is RECOVERING.
  absl::Duration recovery_queue_timeout = absl::Seconds(60);
};

// One output of a request, delivered on the engine thread in order. The last one has final set.
struct RequestOutput {
  std::string request_id;
  std::vector<int32_t> token_ids;
  std::string text_delta;
  std::vector<::tandem::v1::TokenLogprob> logprobs;
  bool final = false;
  absl::Status status;  // final only
  ::tandem::v1::FinishReason finish_reason = ::tandem::v1::FINISH_REASON_UNSPECIFIED;
  ::tandem::v1::Usage usage;
  std::string matched_stop;
};

struct Submission {
  ::tandem::v1::GenerateRequest request;
  absl::Time deadline = absl::InfiniteFuture();  // the gRPC deadline
  std::function<bool()> is_cancelled;            // polled each step (may be empty)
  std::function<void(RequestOutput)> on_output;  // called on the engine thread
  // Who submitted it (coordinator/api_keys.h Caller::owner; "" without API keys). Request ids
  // are unique per owner, and only the owner can Cancel its requests.
  std::string owner;
  std::string trace_id;  // W3C trace id, for logs (may be empty)
};

struct LedgerStats {
  int64_t accepted = 0;
  int64_t terminated = 0;
  int64_t live = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  std::map<absl::StatusCode, int64_t> by_code;
  int64_t failures = 0;    // times the group failed (detected or a step failed)
  int64_t recoveries = 0;  // times a rebuilt group was resumed
  int64_t replays = 0;     // requests sent back to the queue by a failure, to be recomputed
};

// What the engine reports about its group (GetModelInfo, metrics, health).
struct ReplicaStatus {
  bool ready = true;
  std::string reason;        // why it is recovering (the failure), "" when ready
  absl::Time since;          // when it entered this state
  std::string last_failure;  // the latest failure, also after a recovery
};

class Engine {
 public:
  Engine(EngineOptions options, std::shared_ptr<const tokenizer::Tokenizer> tokenizer,
         StepExecutor* executor);
  ~Engine();

  // Validates and queues. On error nothing is queued and on_output is never called. Returns the
  // request id (the client's, or a generated one).
  [[nodiscard]] absl::StatusOr<std::string> Submit(Submission submission);
  // Ends `owner`'s request with CANCELLED at the next step; false if `owner` has no live request
  // of that id (whether or not another owner has one).
  bool Cancel(const std::string& owner, const std::string& request_id);

  // READY; false while RECOVERING.
  bool healthy() const { return ready_.load(); }
  // False once StopAccepting was called (lock-free: state listeners may call it).
  bool accepting() const { return accepting_.load(); }
  ReplicaStatus Replica() const;
  LedgerStats Ledger() const;
  SchedulerStats Stats() const;
  const EngineOptions& options() const { return options_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  // `fn(ready, reason)` runs on every change between READY and RECOVERING (from the engine thread
  // or the thread that called Fail/Resume) with the engine's lock held: it must be quick and must
  // not call back into the engine.
  using StateListener = std::function<void(bool ready, const std::string& reason)>;
  void AddStateListener(StateListener fn);
  // The group failed (any thread): a failure detector (worker/local_cluster.h) saw a worker die or
  // freeze. READY -> RECOVERING at once (listeners run); the engine thread requeues the running
  // requests as soon as it is not inside the executor (the executor fails a step in flight on its
  // own, or the ~20 ms poll gives the thread back). No-op while RECOVERING.
  void Fail(absl::string_view reason);
  // Whether the engine thread has handled the latest failure: no plan of the failed group is in
  // flight and nothing will be sent until Resume. Waits up to `timeout`.
  bool WaitQuiesced(absl::Duration timeout);
  // The group is back (same capacities): RECOVERING -> READY; the requeued requests run again.
  // FAILED_PRECONDITION unless quiesced (see WaitQuiesced).
  [[nodiscard]] absl::Status Resume();
  // Graceful drain (SIGTERM): from now on Submit answers UNAVAILABLE "server shutting down"; live
  // requests run on. Thread-safe.
  void StopAccepting();
  // Ends every live request with `status` at the start of the next step (a step in flight is
  // awaited first). Thread-safe.
  void EndAll(absl::Status status);

 private:
  struct Live;
  void Loop();
  void Terminate(Live& live, absl::Status status, ::tandem::v1::FinishReason reason);
  void OnToken(Live& live, int32_t token, const ::tandem::worker::v1::SequenceResult& result);
  ::tandem::worker::v1::StepRequest BuildRequest(const StepPlan& plan);
  void Break(absl::string_view reason);               // engine thread, under mu_: a step failed
  void MarkFailed(absl::string_view reason);          // under mu_; no-op while RECOVERING
  void Requeue();                                     // engine thread, under mu_: handle a failure
  void ExpireWaiting(absl::Time now);                 // under mu_: recovery_queue_timeout
  absl::Duration StepDeadline(int64_t tokens) const;  // under mu_
  void NotifyState();                                 // under mu_

  EngineOptions options_;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  StepExecutor* executor_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Scheduler scheduler_;
  std::map<uint64_t, std::unique_ptr<Live>> live_;
  std::map<std::pair<std::string, std::string>, uint64_t> by_request_id_;  // (owner, id)
  uint64_t next_id_ = 1;
  uint64_t next_step_id_ = 1;
  int max_in_flight_ = 1;
  std::deque<StepPlan> in_flight_;         // submitted, not yet answered; oldest first
  std::deque<absl::Time> in_flight_sent_;  // when each of in_flight_ was submitted
  absl::Time head_started_;                // when the oldest plan in flight became the oldest
  LedgerStats ledger_;
  std::atomic<bool> ready_{true};
  bool quiesced_ = true;                  // under mu_: the engine thread handled the latest failure
  ReplicaStatus replica_;                 // under mu_
  std::vector<StateListener> listeners_;  // under mu_
  // Measured step time per token (EWMA) and steps of the current group, for step deadlines.
  double seconds_per_token_ = 0.0;
  int64_t group_steps_ = 0;
  bool stop_ = false;
  std::atomic<bool> accepting_{true};
  std::optional<absl::Status> end_all_;  // under mu_
  std::thread thread_;
};

}  // namespace tandem::coordinator
