// The worker's log lines about the steps it runs, carrying the W3C trace ids the coordinator puts
// in each sequence of a plan (SequenceStep.trace_id), so a request's trace id finds its steps in
// every rank's log:
//   - "step" (DEBUG, TANDEM_LOG_LEVEL=debug): step_id, sequences, tokens, compute_us, trace_ids;
//   - "step failed" (ERROR): step_id, code, error, trace_ids;
//   - "sequence failed" (WARNING, the last stage's TP rank 0 only): one sequence could not be
//     sampled: step_id, request_tag, trace_id, code, error.
// trace_ids is the distinct non-empty trace ids of the plan's sequences, in plan order, joined by
// commas. Nothing here logs token ids or text. Thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "tandem/worker/v1/worker.pb.h"

namespace tandem::worker {

// The distinct non-empty trace ids of `req`'s sequences, in plan order, joined by ','.
std::string StepTraceIds(const ::tandem::worker::v1::StepRequest& req);

// The DEBUG "step" line (nothing is built unless DEBUG is on), then a WARNING "sequence failed"
// line per result of `resp` that carries an error.
void LogStepDone(const ::tandem::worker::v1::StepRequest& req,
                 const ::tandem::worker::v1::StepResponse& resp);

// The ERROR "step failed" line.
void LogStepFailed(const ::tandem::worker::v1::StepRequest& req, const absl::Status& status);

}  // namespace tandem::worker
