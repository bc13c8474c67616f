// tandem worker: one worker process of a model replica, serving tandem.worker.v1 (normally
// started by a launcher such as `tandem logits --tp N --pp M`, or by the coordinator's
// deployment). It waits for a coordinator to Claim and Load it, then executes step plans.
#include <string>

#include "auth/group_identity.h"
#include "core/status.h"
#include "tools/cli/command.h"
#include "tools/cli/flag_checks.h"
#include "worker/worker_server.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "worker";

absl::Status Run(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"listen", "port-file", "parent-pid", "group-secret-file",
                                   "lease-ttl-ms", "tls-cert", "tls-key", "tls-ca"}));
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
  return worker::RunWorkerServer(o);
}

TANDEM_COMMAND(kName, "run one worker process (gRPC tandem.worker.v1)",
               "[--listen 127.0.0.1:0] [--port-file FILE] [--parent-pid PID] "
               "[--group-secret-file PATH] [--lease-ttl-ms 5000] "
               "[--tls-cert PEM --tls-key PEM --tls-ca PEM]\n\n"
               "The group secret (required) comes from --group-secret-file or the "
               "TANDEM_GROUP_SECRET environment variable and must equal the coordinator's. A "
               "coordinator owns the worker while it renews its lease (--lease-ttl-ms); another "
               "one is refused until the lease lapses. With --tls-*, only a coordinator whose "
               "certificate is signed by --tls-ca can connect (mTLS). See docs/serving.md, "
               "\"Security\".",
               {}, [](const Args& args) {
                 absl::Status s = Run(args);
                 return s.ok() ? 0 : Fail(kName, s);
               });

}  // namespace
}  // namespace tandem::cli
