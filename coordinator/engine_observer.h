// EngineObserver: what the engine reports as it runs, for metrics and access logs
// (coordinator/coordinator_metrics.h implements it). The engine calls it on its own thread, under
// its lock: implementations must be cheap (atomic updates) and must not call back into the engine.
// OnRefused alone comes from the service's threads, concurrently: it must be thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tandem/v1/tandem.pb.h"

namespace tandem::coordinator {

// A request's terminal output, as the engine hands it to the client.
struct FinishedRequest {
  const std::string& request_id;
  const std::string& trace_id;  // "" when the caller gave none
  const ::tandem::v1::GenerateRequest& request;
  const absl::Status& status;
  ::tandem::v1::FinishReason finish_reason;
  const ::tandem::v1::Usage& usage;  // token counts and times
};

// A generation refused before the engine admitted it (a malformed or invalid request, a missing
// API key, a full queue, a server shutting down or broken): the service reports it.
struct RefusedRequest {
  const std::string& method;      // "Generate" or "GenerateStream"
  const std::string& request_id;  // the client's, "" when it gave none (or it was not parsed)
  const std::string& trace_id;
  const ::tandem::v1::GenerateRequest* request;  // null when the request could not be parsed
  const absl::Status& status;
};

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  // A step plan was answered `elapsed` after it was sent, carrying `tokens` tokens of
  // `sequences` sequences.
  virtual void OnStep(absl::Duration elapsed, int64_t tokens, int64_t sequences) = 0;
  // A token was generated; `since_previous` is the time since the request's previous token
  // (absl::InfiniteDuration() for its first token).
  virtual void OnToken(absl::Duration since_previous) = 0;
  virtual void OnFinished(const FinishedRequest& request) = 0;
  // Called by the service (on a gRPC thread, not the engine's) for each refused generation.
  virtual void OnRefused(const RefusedRequest& /*request*/) {}
};

}  // namespace tandem::coordinator
