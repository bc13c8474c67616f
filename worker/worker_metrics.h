// WorkerMetrics: one worker process's Prometheus metrics (docs/observability.md lists them), on
// metrics::DefaultRegistry(): step time by phase, TP collective and pipeline transfer time and
// bytes, weight and state memory, load progress. The StageExecutor updates them as it runs; the
// worker's --metrics-port serves them. Updates are relaxed atomics. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "metrics/http_exporter.h"
#include "metrics/registry.h"

namespace tandem::worker {

enum class StepPhase { kEmbed, kRecv, kLayers, kSend, kHead, kSample, kNumPhases };

struct WorkerMetrics {
  static WorkerMetrics& Get();

  metrics::Histogram* phase_seconds[static_cast<int>(StepPhase::kNumPhases)];
  metrics::Histogram* step_seconds;
  metrics::Counter* steps;
  metrics::Counter* step_tokens;
  metrics::Counter* step_errors;
  metrics::Counter* allreduce_seconds;
  metrics::Counter* allreduce_bytes;
  metrics::Counter* allreduce_calls;
  metrics::Counter* transfer_seconds_send;
  metrics::Counter* transfer_bytes_send;
  metrics::Counter* transfer_seconds_recv;
  metrics::Counter* transfer_bytes_recv;
  metrics::Gauge* weight_bytes;
  metrics::Gauge* state_bytes;
  metrics::Gauge* snapshot_bytes;
  metrics::Gauge* checkpoint_bytes_read;
  metrics::Gauge* loaded;  // 1 once Load succeeded
  metrics::Gauge* load_seconds;

 private:
  WorkerMetrics();
};

// Serves the worker's metrics on the host of `listen` ("host:port" of its gRPC server) at
// `port` (0: a free port), logging where; registers every worker metric first, so a scrape
// before the first step sees them at zero.
[[nodiscard]] absl::StatusOr<std::unique_ptr<metrics::MetricsHttpServer>> StartWorkerMetricsServer(
    const std::string& listen, int port);

// Seconds since `start` (steady clock).
inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace tandem::worker
