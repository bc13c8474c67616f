#include "tools/cli/observability_flags.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "core/status.h"

namespace tandem::cli {

const char kObservabilityUsage[] =
    "  --metrics-port P      serve Prometheus /metrics on --host at P (0: a free port, printed; "
    "default -1: off)\n"
    "  --worker-metrics-port-base B\n"
    "                        local workers serve /metrics on 127.0.0.1:B+rank (0: free ports, in "
    "their logs; default -1: off)\n"
    "  --log-format F        text or json log lines on stderr, workers' too (default text, or "
    "$TANDEM_LOG_FORMAT)\n"
    "  --log-prompts         put the prompt in the access log (default: off, never logged)\n";

absl::StatusOr<ObservabilityFlags> ApplyObservabilityFlags(const Args& args,
                                                           const std::string& component) {
  ObservabilityFlags out;
  core::SetLogContext(component);
  if (auto f = args.Get("log-format")) {
    core::LogFormat format;
    if (!core::ParseLogFormat(*f, &format)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--log-format: '", *f, "' is not one of text, json"));
    }
    core::SetLogFormat(format);
    setenv("TANDEM_LOG_FORMAT", f->c_str(), 1);
  }
  if (const char* g = std::getenv("TANDEM_LOG_GROUP"); g == nullptr || *g == '\0') {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    const std::string group = absl::StrCat(host, "-", getpid());
    setenv("TANDEM_LOG_GROUP", group.c_str(), 1);
    core::SetLogGroup(group);
  }
  ASSIGN_OR_RETURN(int64_t port, args.GetInt("metrics-port", -1));
  if (port < -1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-port ", port, " is outside [-1, 65535]"));
  }
  ASSIGN_OR_RETURN(int64_t base, args.GetInt("worker-metrics-port-base", -1));
  if (base < -1 || base > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--worker-metrics-port-base ", base, " is outside [-1, 65535]"));
  }
  out.metrics_port = static_cast<int>(port);
  out.worker_metrics_port_base = static_cast<int>(base);
  out.log_prompts = args.Has(kLogPromptsFlag);
  return out;
}

}  // namespace tandem::cli
