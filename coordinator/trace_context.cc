#include "coordinator/trace_context.h"

#include <cstdint>
#include <random>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace tandem::coordinator {
namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

std::string RandomHex(int digits) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  while (true) {
    out.clear();
    for (int i = 0; i < digits; i += 16) {
      uint64_t v = rng();
      for (int k = 0; k < 16 && i + k < digits; ++k, v >>= 4) out += kHex[v & 15];
    }
    if (!AllZero(out)) return out;
  }
}

}  // namespace

std::string TraceContext::Header() const {
  return absl::StrCat("00-", trace_id, "-", span_id, "-", flags);
}

bool ParseTraceparent(std::string_view h, TraceContext* out) {
  // version(2) - trace-id(32) - parent-id(16) - flags(2) = 55 characters for version 00.
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
  const std::string_view version = h.substr(0, 2), trace = h.substr(3, 32),
                         parent = h.substr(36, 16), flags = h.substr(53, 2);
  if (!IsLowerHex(version) || version == "ff") return false;
  if (version == "00" && h.size() != 55) return false;
  if (version != "00" && h.size() > 55 && h[55] != '-') return false;
  if (!IsLowerHex(trace) || AllZero(trace) || !IsLowerHex(parent) || AllZero(parent) ||
      !IsLowerHex(flags)) {
    return false;
  }
  out->trace_id = std::string(trace);
  out->span_id = std::string(parent);
  out->flags = std::string(flags);
  return true;
}

TraceContext ContinueTrace(std::string_view traceparent) {
  TraceContext t;
  if (!ParseTraceparent(traceparent, &t)) {
    t.trace_id = RandomHex(32);
    t.flags = "01";
  }
  t.span_id = RandomHex(16);
  return t;
}

std::string AcceptTraceContext(::grpc::CallbackServerContext* context) {
  std::string_view header;
  const auto& md = context->client_metadata();
  auto it = md.find("traceparent");
  if (it != md.end()) header = std::string_view(it->second.data(), it->second.size());
  TraceContext t = ContinueTrace(header);
  context->AddInitialMetadata("traceparent", t.Header());
  return t.trace_id;
}

}  // namespace tandem::coordinator
