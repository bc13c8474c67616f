// W3C Trace Context (https://www.w3.org/TR/trace-context/) for the coordinator's RPCs.
//
// A client may send `traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` as gRPC
// metadata. The coordinator keeps the trace id (so its logs join the caller's trace), makes its own
// span id, and returns `traceparent` with both in the response's initial metadata. Without a valid
// header (absent, malformed, all-zero ids, version ff) it starts a new trace with a random id.
// Thread-safe (the random source is per thread).
#pragma once

#include <string>
#include <string_view>

namespace grpc {
class CallbackServerContext;
}

namespace tandem::coordinator {

struct TraceContext {
  std::string trace_id;  // 32 lowercase hex digits, not all zero
  std::string span_id;   // 16 lowercase hex digits, not all zero
  std::string flags = "01";
  // "00-<trace_id>-<span_id>-<flags>"
  std::string Header() const;
};

// The trace id and flags of a valid `traceparent` value (a version other than 00 is accepted when
// its first four fields are well formed, as the spec asks); false for an invalid one.
bool ParseTraceparent(std::string_view header, TraceContext* out);

// The context this server's span runs in: the caller's trace (when its traceparent is valid) or a
// new one, with a fresh span id.
TraceContext ContinueTrace(std::string_view traceparent);

// Reads `traceparent` from the call's client metadata, adds this server's `traceparent` to the
// response's initial metadata and returns the trace id. Call before the first write or Finish.
std::string AcceptTraceContext(::grpc::CallbackServerContext* context);

}  // namespace tandem::coordinator
