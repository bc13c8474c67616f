#include "worker/worker_metrics.h"

#include "core/logging.h"
#include "core/status.h"

namespace tandem::worker {

absl::StatusOr<std::unique_ptr<metrics::MetricsHttpServer>> StartWorkerMetricsServer(
    const std::string& listen, int port) {
  WorkerMetrics::Get();
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  ASSIGN_OR_RETURN(auto server,
                   metrics::MetricsHttpServer::Start(host, port, &metrics::DefaultRegistry()));
  TANDEM_LOG(INFO) << "worker metrics on http://" << listen.substr(0, listen.rfind(':')) << ":"
                   << server->port() << "/metrics";
  return server;
}

WorkerMetrics& WorkerMetrics::Get() {
  static WorkerMetrics* m = new WorkerMetrics();
  return *m;
}

WorkerMetrics::WorkerMetrics() {
  metrics::Registry& r = metrics::DefaultRegistry();
  static const char* kPhases[] = {"embed",         "pipeline_recv", "layers",
                                  "pipeline_send", "head",          "sample"};
  const auto buckets = metrics::ExponentialBuckets(0.0001, 2, 18);  // 100 us .. ~13 s
  for (int p = 0; p < static_cast<int>(StepPhase::kNumPhases); ++p) {
    phase_seconds[p] = r.Histogram(
        "tandem_worker_step_phase_seconds",
        "Time of one phase of a step on this rank: embed (with its all-reduce), pipeline_recv "
        "(waiting for and receiving the previous stage's hidden states), layers (with their TP "
        "all-reduces), pipeline_send, head (logits) and sample (with the logits gather).",
        buckets, {{"phase", kPhases[p]}});
  }
  step_seconds = r.Histogram("tandem_worker_step_duration_seconds",
                             "Time of one step on this rank, start to answer.", buckets);
  steps = r.Counter("tandem_worker_steps_total", "Steps executed by this rank.");
  step_tokens = r.Counter("tandem_worker_step_tokens_total", "Tokens in the steps of this rank.");
  step_errors = r.Counter("tandem_worker_step_errors_total", "Steps that failed on this rank.");
  allreduce_seconds = r.Counter("tandem_worker_collective_seconds_total",
                                "Time in TP collectives of the layers.", {{"op", "all_reduce"}});
  allreduce_bytes = r.Counter("tandem_worker_collective_bytes_total",
                              "Bytes reduced by TP collectives of the layers (per rank).",
                              {{"op", "all_reduce"}});
  allreduce_calls = r.Counter("tandem_worker_collective_calls_total",
                              "TP collective calls of the layers.", {{"op", "all_reduce"}});
  transfer_seconds_send =
      r.Counter("tandem_worker_pipeline_transfer_seconds_total",
                "Time sending/receiving hidden states between stages.", {{"direction", "send"}});
  transfer_seconds_recv =
      r.Counter("tandem_worker_pipeline_transfer_seconds_total",
                "Time sending/receiving hidden states between stages.", {{"direction", "recv"}});
  transfer_bytes_send =
      r.Counter("tandem_worker_pipeline_transfer_bytes_total",
                "Hidden-state bytes sent/received between stages.", {{"direction", "send"}});
  transfer_bytes_recv =
      r.Counter("tandem_worker_pipeline_transfer_bytes_total",
                "Hidden-state bytes sent/received between stages.", {{"direction", "recv"}});
  weight_bytes = r.Gauge("tandem_worker_weight_bytes", "Bytes of this rank's weight slice.");
  state_bytes =
      r.Gauge("tandem_worker_state_bytes", "Bytes of this rank's SSM state and KV cache pools.");
  snapshot_bytes = r.Gauge("tandem_worker_snapshot_bytes",
                           "Bytes of this rank's prefix-cache snapshot pool (SSM + conv state).");
  checkpoint_bytes_read = r.Gauge("tandem_worker_checkpoint_bytes_read",
                                  "Checkpoint bytes this rank read while loading.");
  loaded = r.Gauge("tandem_worker_loaded", "1 once this rank's Load succeeded, else 0.");
  load_seconds = r.Gauge("tandem_worker_load_seconds", "Time the last Load took.");
}

}  // namespace tandem::worker
