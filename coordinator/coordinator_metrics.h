// CoordinatorMetrics: the coordinator's Prometheus metrics (docs/observability.md lists them) and
// its access log, one line per finished request and per generation refused before admission.
//
// It is the engine's EngineObserver (per-step, per-token and per-request updates: relaxed atomics,
// no allocation except the access-log line) and, once AttachEngine is called, pulls the engine's
// queue, running, slot, block and preemption figures when the registry renders (a scrape). The
// replica state (loading, ready, recovering) is set by the launcher and reads "recovering"
// whenever the engine is (its group failed and is being rebuilt). The registry and the engine must
// outlive this object. Thread-safe.
#pragma once

#include <atomic>
#include <string>

#include "coordinator/engine.h"
#include "coordinator/engine_observer.h"
#include "coordinator/loading_state.h"
#include "metrics/registry.h"

namespace tandem::coordinator {

enum class ReplicaState { kLoading = 0, kReady = 1, kRecovering = 2 };

struct CoordinatorMetricsOptions {
  bool access_log = true;    // one INFO line per finished request
  bool log_prompts = false;  // include the prompt (text or token ids) in the access log
};

class CoordinatorMetrics final : public EngineObserver {
 public:
  CoordinatorMetrics(metrics::Registry* registry, CoordinatorMetricsOptions options);

  // Registers the scrape-time figures of `engine` (call once, before scrapes may run).
  void AttachEngine(const Engine* engine);
  void SetReplicaState(ReplicaState state) { state_.store(static_cast<int>(state)); }
  // Registers the first load's progress (tandem_replica_ranks, tandem_replica_ranks_loaded,
  // tandem_replica_loaded_bytes); `loading` must outlive the registry's scrapes. Call once.
  void AttachLoading(const LoadingState* loading);

  void OnStep(absl::Duration elapsed, int64_t tokens, int64_t sequences) override;
  void OnToken(absl::Duration since_previous) override;
  void OnFinished(const FinishedRequest& request) override;
  // The access-log line of a generation refused before admission ("request refused").
  void OnRefused(const RefusedRequest& request) override;

 private:
  metrics::Registry* registry_;
  CoordinatorMetricsOptions options_;
  std::atomic<int> state_{static_cast<int>(ReplicaState::kLoading)};
  std::atomic<const Engine*> engine_{nullptr};
  metrics::Counter* prompt_tokens_;
  metrics::Counter* generation_tokens_;
  metrics::Counter* steps_;
  metrics::Histogram* step_seconds_;
  metrics::Histogram* step_tokens_;
  metrics::Histogram* step_sequences_;
  metrics::Histogram* itl_seconds_;
  metrics::Histogram* ttft_seconds_;
  metrics::Histogram* queue_seconds_;
  metrics::Histogram* e2e_seconds_;
  metrics::Histogram* request_prompt_tokens_;
  metrics::Histogram* request_generation_tokens_;
};

}  // namespace tandem::coordinator
