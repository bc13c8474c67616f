#include "tools/cli/flag_checks.h"

#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace tandem::cli {
namespace {

struct IntFlag {
  const char* name;
  int64_t min;
  int64_t max;
  const char* meaning;
};

// The upper bounds keep every value within the types it is stored in (int32 capacities, gRPC's
// int message size) and within what a machine can allocate; none is a tuning limit.
constexpr IntFlag kServeIntFlags[] = {
    {"tp", 1, 64, "tensor-parallel ranks per stage"},
    {"pp", 1, 64, "pipeline stages"},
    {"port", 0, 65535, "TCP port, 0 = any free one"},
    {"slots", 1, 1 << 16, "sequences that run at once"},
    {"blocks", 1, 1 << 24, "KV-cache blocks per rank"},
    {"block-size", 1, 1 << 16, "tokens per KV-cache block"},
    {"max-tokens-per-step", 1, 1 << 24, "tokens one step may carry"},
    {"max-queued-requests", 1, 1 << 30, "requests waiting for a slot"},
    {"max-queued-prompt-tokens", 1, int64_t{1} << 40, "prompt tokens waiting for a slot"},
    {"max-new-tokens", 1, INT32_MAX, "generated tokens per request"},
    {"max-receive-bytes", 1024, INT32_MAX, "bytes of one request message"},
    {"micro-batches", 1, 64, "step plans in flight at once"},
    {"start-timeout", 1, 24 * 3600, "seconds to wait for the workers"},
    {"drain-timeout", 0, 24 * 3600, "seconds requests in flight may run on after SIGTERM"},
};

absl::Status CheckRange(const Args& args, const IntFlag& flag) {
  if (!args.Has(flag.name)) return absl::OkStatus();
  const absl::StatusOr<int64_t> value = args.GetInt(flag.name, 0);
  if (!value.ok()) return value.status();
  if (*value < flag.min || *value > flag.max) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag.name, " ", *value, " is outside [",
                                                   flag.min, ", ", flag.max, "] (", flag.meaning,
                                                   ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckServeFlags(const Args& args) {
  for (const IntFlag& flag : kServeIntFlags) RETURN_IF_ERROR(CheckRange(args, flag));
  for (const char* text : {"model", "host", "collective", "workers", "rendezvous-host"}) {
    if (args.Has(text) && args.GetOr(text, "").empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--", text, ": the value is empty"));
    }
  }
  const std::string collective = args.GetOr("collective", "gloo");
  if (collective != "gloo" && collective != "ucx") {
    return absl::InvalidArgumentError(
        absl::StrCat("--collective '", collective, "' is not one of gloo, ucx"));
  }
  ASSIGN_OR_RETURN(const int64_t tp, args.GetInt("tp", 2));
  ASSIGN_OR_RETURN(const int64_t pp, args.GetInt("pp", 2));
  if (tp * pp > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tp ", tp, " x --pp ", pp, " = ", tp * pp, " ranks exceed 64"));
  }
  return absl::OkStatus();
}

absl::Status CheckServeCapacity(const coordinator::EngineOptions& options) {
  const auto& s = options.scheduler;
  // The smallest request: a one-token prompt and one new token.
  if (options.limits.max_context < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--blocks ", s.num_blocks, " x --block-size ", s.block_size, " = ",
        int64_t{s.num_blocks} * s.block_size,
        " tokens of context (after the workers' capacities): a request needs at least 2"));
  }
  if (s.num_slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slots: the workers offer ", s.num_slots, " slots"));
  }
  if (s.max_tokens_per_step < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--max-tokens-per-step: the workers allow ",
                                                   s.max_tokens_per_step, " tokens per step"));
  }
  return absl::OkStatus();
}

absl::Status CheckWorkerFlags(const Args& args) {
  const std::string listen = args.GetOr("listen", "127.0.0.1:0");
  const size_t colon = listen.rfind(':');
  int64_t port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen '", listen, "' is not HOST:PORT with a port in [0, 65535] (e.g. 127.0.0.1:0)"));
  }
  if (args.Has("port-file") && args.GetOr("port-file", "").empty()) {
    return absl::InvalidArgumentError("--port-file: the value is empty");
  }
  ASSIGN_OR_RETURN(const int64_t parent, args.GetInt("parent-pid", 0));
  if (parent < 0 || parent > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--parent-pid ", parent, " is outside [0, ", INT32_MAX, "] (0 = none)"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::cli
