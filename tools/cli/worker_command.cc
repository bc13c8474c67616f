// tandem worker: one worker process of a model replica, serving tandem.worker.v1 (normally
// started by a launcher such as `tandem logits --tp N --pp M`, or by the coordinator's
// deployment). It waits for a coordinator to Claim and Load it, then executes step plans.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "auth/group_identity.h"
#include "core/logging.h"
#include "core/status.h"
#include "tools/cli/command.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/local_ranks.h"
#include "worker/worker_server.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "worker";

// --local-ranks N > 1: this process supervises N worker processes (tools/cli/local_ranks.h).
absl::Status RunSupervisor(const Args& args, int64_t ranks) {
  for (const char* flag : {"port-file", "parent-pid"}) {
    if (args.Has(flag)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " does not apply with --local-ranks (each rank has its port)"));
    }
  }
  LocalRanksOptions o;
  o.ranks = static_cast<int>(std::clamp<int64_t>(ranks, -1, 1 << 20));
  const std::string listen = args.GetOr("listen", "127.0.0.1:0");
  const size_t colon = listen.rfind(':');  // CheckWorkerFlags: HOST:PORT
  o.host = listen.substr(0, colon);
  o.first_port = std::atoi(listen.c_str() + colon + 1);
  ASSIGN_OR_RETURN(const int64_t metrics_port, args.GetInt("metrics-port", -1));
  if (metrics_port < -1 || metrics_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-port ", metrics_port, " is outside [-1, 65535]"));
  }
  o.metrics_port = static_cast<int>(metrics_port);
  ASSIGN_OR_RETURN(const int64_t threads, args.GetInt("threads", 0));
  if (args.Has("threads") && (threads < 1 || threads > 1024)) {
    return absl::InvalidArgumentError(absl::StrCat("--threads ", threads, " is outside [1, 1024]"));
  }
  o.threads_per_rank = static_cast<int>(threads);
  // Everything else every rank takes as it is; the group secret also from the environment.
  for (const char* flag :
       {"log-format", "group-secret-file", "lease-ttl-ms", "tls-cert", "tls-key", "tls-ca"}) {
    if (auto v = args.Get(flag)) {
      o.worker_args.push_back(absl::StrCat("--", flag));
      o.worker_args.push_back(*v);
    }
  }
  RETURN_IF_ERROR(CheckLocalRanks(o));
  // Fail here, not in N restarting children, without a group secret.
  RETURN_IF_ERROR(auth::LoadGroupSecret(args.GetOr("group-secret-file", "")).status());
  ASSIGN_OR_RETURN(const int code, RunLocalRanks(o));
  if (code != 0) {
    return absl::UnavailableError("local ranks kept exiting (see the log above)");
  }
  return absl::OkStatus();
}

absl::Status Run(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"listen", "port-file", "parent-pid", "metrics-port",
                                   "log-format", "threads", "group-secret-file", "lease-ttl-ms",
                                   "tls-cert", "tls-key", "tls-ca", "local-ranks"}));
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
  ASSIGN_OR_RETURN(const int64_t local_ranks, args.GetInt("local-ranks", 1));
  if (local_ranks != 1) return RunSupervisor(args, local_ranks);
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
               "--tls-ca connect (default off)\n"
               "  --local-ranks N       run N worker processes (one per GPU of this node) on "
               "ports PORT..PORT+N-1 (metrics: P..P+N-1), rank i with CUDA_VISIBLE_DEVICES=i and "
               "1/N of the CPUs; a rank that exits is restarted on its port, and after 6 exits "
               "within 60 s every rank stops and this process exits 1 (default 1: this process "
               "is the worker; docs/deploy.md)\n\n"
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
