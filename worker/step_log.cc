#include "worker/step_log.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace tandem::worker {

namespace pb = ::tandem::worker::v1;

std::string StepTraceIds(const pb::StepRequest& req) {
  std::vector<const std::string*> seen;
  std::string out;
  for (const pb::SequenceStep& s : req.sequences()) {
    const std::string& id = s.trace_id();
    if (id.empty()) continue;
    if (std::any_of(seen.begin(), seen.end(), [&](const std::string* p) { return *p == id; })) {
      continue;
    }
    seen.push_back(&id);
    if (!out.empty()) out += ',';
    out += id;
  }
  return out;
}

void LogStepDone(const pb::StepRequest& req, const pb::StepResponse& resp) {
  if (core::MinLogLevel() <= core::LogLevel::kDebug) {
    int64_t tokens = 0;
    for (const pb::SequenceStep& s : req.sequences()) tokens += s.token_ids_size();
    core::LogEvent(core::LogLevel::kDebug, __FILE__, __LINE__, "step",
                   {{"step_id", absl::StrCat(req.step_id()), false},
                    {"sequences", absl::StrCat(req.sequences_size()), false},
                    {"tokens", absl::StrCat(tokens), false},
                    {"compute_us", absl::StrCat(resp.compute_us()), false},
                    {"trace_ids", StepTraceIds(req)}});
  }
  for (int i = 0; i < resp.results_size(); ++i) {
    const pb::SequenceResult& r = resp.results(i);
    if (r.error_code() == 0) continue;
    const std::string trace_id = i < req.sequences_size() ? req.sequences(i).trace_id() : "";
    core::LogEvent(
        core::LogLevel::kWarning, __FILE__, __LINE__, "sequence failed",
        {{"step_id", absl::StrCat(req.step_id()), false},
         {"request_tag", absl::StrCat(r.request_tag()), false},
         {"trace_id", trace_id},
         {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(r.error_code()))},
         {"error", r.error()}});
  }
}

void LogStepFailed(const pb::StepRequest& req, const absl::Status& status) {
  core::LogEvent(core::LogLevel::kError, __FILE__, __LINE__, "step failed",
                 {{"step_id", absl::StrCat(req.step_id()), false},
                  {"code", absl::StatusCodeToString(status.code())},
                  {"error", std::string(status.message())},
                  {"trace_ids", StepTraceIds(req)}});
}

}  // namespace tandem::worker
