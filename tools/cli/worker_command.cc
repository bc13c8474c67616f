// tandem worker: one worker process of a model replica, serving tandem.worker.v1 (normally
// started by a launcher such as `tandem logits --tp N --pp M`, or by the coordinator's
// deployment). It waits for a coordinator to Claim and Load it, then executes step plans.
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "auth/group_identity.h"
#include "core/logging.h"
#include "core/status.h"
#include "tools/cli/command.h"
#include "tools/cli/flag_checks.h"
#include "worker/worker_server.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "worker";

absl::Status Run(const Args& args) {
  RETURN_IF_ERROR(
      args.CheckKnown({"listen", "port-file", "parent-pid", "metrics-port", "log-format", "threads",
                       "group-secret-file", "lease-ttl-ms", "tls-cert", "tls-key", "tls-ca"}));
  core::SetLogContext("worker");
  if (auto f = args.Get("log-format")) {
    core::LogFormat format;
    if (!core::ParseLogFormat(*f, &format)) {
      return absl::InvalidArgumentError("--log-format: '" + *f + "' is not one of text, json");
    }
    core::SetLogFormat(format);
  }
  if (auto t = args.Get("threads")) {
    ASSIGN_OR_RETURN(int64_t threads, args.GetInt("threads", 0));
    if (threads < 1 || threads > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("--threads ", threads, " is outside [1, 1024]"));
    }
    // Read by core::ThreadPool::Default() when the first kernel runs.
    setenv("TANDEM_NUM_THREADS", t->c_str(), 1);
  }
  RETURN_IF_ERROR(CheckWorkerFlags(args));
  worker::WorkerServerOptions o;
  o.listen = args.GetOr("listen", o.listen);
  o.port_file = args.GetOr("port-file", "");
  ASSIGN_OR_RETURN(int64_t parent, args.GetInt("parent-pid", 0));
  o.parent_pid = static_cast<int>(parent);
  ASSIGN_OR_RETURN(o.group_secret, auth::LoadGroupSecret(args.GetOr("group-secret-file", "")));
  ASSIGN_OR_RETURN(int64_t ttl_ms, args.GetInt("lease-ttl-ms", 5000));
  o.lease_ttl = absl::Milliseconds(ttl_ms);
  o.tls.cert = args.GetOr("tls-cert", "");
  o.tls.key = args.GetOr("tls-key", "");
  o.tls.ca = args.GetOr("tls-ca", "");
  ASSIGN_OR_RETURN(int64_t metrics_port, args.GetInt("metrics-port", -1));
  if (metrics_port < -1 || metrics_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-port ", metrics_port, " is outside [-1, 65535]"));
  }
  o.metrics_port = static_cast<int>(metrics_port);
  return worker::RunWorkerServer(o);
}

TANDEM_COMMAND(kName, "run one worker process (gRPC tandem.worker.v1)",
               "[options]\n\n"
               "  --listen HOST:PORT    where the gRPC server listens (default 127.0.0.1:0: a free "
               "port)\n"
               "  --port-file FILE      write the bound port here (default: none)\n"
               "  --parent-pid PID      exit when this process is gone (default 0: never)\n"
               "  --metrics-port P      serve Prometheus /metrics on the --listen host at P (0: a "
               "free port, logged; default -1: off)\n"
               "  --threads N           compute threads (default $TANDEM_NUM_THREADS, else the "
               "CPUs this process may use: affinity and cgroup CPU quota)\n"
               "  --log-format F        text or json log lines on stderr (default text, or "
               "$TANDEM_LOG_FORMAT)\n"
               "  --group-secret-file F the group secret shared with the coordinator (required; "
               "default $TANDEM_GROUP_SECRET)\n"
               "  --lease-ttl-ms N      how long a coordinator's lease lasts without renewal "
               "(default 5000)\n"
               "  --tls-cert PEM, --tls-key PEM, --tls-ca PEM\n"
               "                        mTLS: only coordinators with a certificate signed by "
               "--tls-ca connect (default off)\n\n"
               "A coordinator owns the worker while it renews its lease; another one is refused "
               "until the lease lapses. See docs/serving.md, \"Security\". Without --parent-pid "
               "the worker outlives its coordinator and waits for the next one; SIGTERM or SIGINT "
               "end it with status 0 (also as PID 1 in a container).",
               {}, [](const Args& args) {
                 absl::Status s = Run(args);
                 return s.ok() ? 0 : Fail(kName, s);
               });

}  // namespace
}  // namespace tandem::cli
