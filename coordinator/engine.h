// Engine: the coordinator's request loop. Accepts validated requests, runs the scheduler, sends
// step plans to the workers (through a StepExecutor that drives real worker processes over
// tandem.worker.v1), turns sampled tokens into outputs (streaming detokenizer, stop strings,
// EOS / stop ids / length) and ends every accepted request with exactly one terminal output.
//
// One engine thread owns the scheduler. Submit/Cancel are thread-safe; cancellations, aborts and
// deadlines are applied at the start of the next step (so state is freed within one step). When a
// step fails (a worker died), every live request ends with UNAVAILABLE, the engine is marked
// broken (healthy() false) and later Submits get UNAVAILABLE; the process keeps running.
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
};

struct EngineOptions {
  SchedulerConfig scheduler;
  ValidationLimits limits;
  int32_t eos_token_id = -1;
  EngineObserver* observer = nullptr;  // metrics and access logs (may be null; not owned)
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

  bool healthy() const { return !broken_.load(); }
  std::string broken_reason() const;
  LedgerStats Ledger() const;
  SchedulerStats Stats() const;
  const EngineOptions& options() const { return options_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  // Called once when the engine breaks (from the engine thread, or from the thread that called
  // Fail), with the engine's lock held: it must not call back into the engine.
  void SetOnBroken(std::function<void()> fn);
  // Breaks the engine from any thread: a failure detector (worker/local_cluster.h) saw a worker
  // die or freeze. Health turns NOT_SERVING at once (on_broken), new Submits get UNAVAILABLE, and
  // the engine thread ends every live request UNAVAILABLE as soon as it is not waiting for a step
  // (the executor must fail a step in flight on its own). Idempotent: the first reason stays.
  void Fail(absl::string_view reason);
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
  void Break(absl::string_view reason);
  void MarkBroken(absl::string_view reason);  // under mu_; idempotent

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
  LedgerStats ledger_;
  std::atomic<bool> broken_{false};
  std::string broken_reason_;
  std::function<void()> on_broken_;
  bool stop_ = false;
  bool accepting_ = true;                // under mu_
  std::optional<absl::Status> end_all_;  // under mu_
  std::thread thread_;
};

}  // namespace tandem::coordinator
