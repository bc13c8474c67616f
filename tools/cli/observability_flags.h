// The observability options shared by `tandem serve` and friends: --metrics-port,
// --worker-metrics-port-base, --log-format, --log-prompts. Parsing applies the log format to this
// process and exports it (TANDEM_LOG_FORMAT) and the log group (TANDEM_LOG_GROUP) to the
// processes it starts. Not thread-safe (main only, before threads start).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "tools/cli/command.h"

namespace tandem::cli {

struct ObservabilityFlags {
  int metrics_port = -1;              // -1: no /metrics
  int worker_metrics_port_base = -1;  // -1: workers serve none
  bool log_prompts = false;
};

// The option that takes no value (for the command's flags).
inline constexpr char kLogPromptsFlag[] = "log-prompts";
// One line per option for --help.
extern const char kObservabilityUsage[];

// Sets this process's log component (e.g. "coordinator") and applies the options.
[[nodiscard]] absl::StatusOr<ObservabilityFlags> ApplyObservabilityFlags(
    const Args& args, const std::string& component);

}  // namespace tandem::cli
