// tandem worker: one worker process of a model replica, serving tandem.worker.v1 (normally
// started by a launcher such as `tandem logits --tp N --pp M`, or by the coordinator's
// deployment). It waits for Load, then executes step plans.
#include <string>

#include "core/status.h"
#include "tools/cli/command.h"
#include "tools/cli/flag_checks.h"
#include "worker/worker_server.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "worker";

absl::Status Run(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"listen", "port-file", "parent-pid"}));
  RETURN_IF_ERROR(CheckWorkerFlags(args));
  worker::WorkerServerOptions o;
  o.listen = args.GetOr("listen", o.listen);
  o.port_file = args.GetOr("port-file", "");
  ASSIGN_OR_RETURN(int64_t parent, args.GetInt("parent-pid", 0));
  o.parent_pid = static_cast<int>(parent);
  return worker::RunWorkerServer(o);
}

TANDEM_COMMAND(kName, "run one worker process (gRPC tandem.worker.v1)",
               "[--listen 127.0.0.1:0] [--port-file FILE] [--parent-pid PID]", {},
               [](const Args& args) {
                 absl::Status s = Run(args);
                 return s.ok() ? 0 : Fail(kName, s);
               });

}  // namespace
}  // namespace tandem::cli
