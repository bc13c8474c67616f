// The worker process's gRPC server: tandem.worker.v1.Worker over a StageExecutor.
//
// RunWorkerServer listens on `listen` ("127.0.0.1:0" picks a free port), writes the bound port to
// `port_file` when given (written to a temporary name and renamed, so a reader never sees a
// partial file) and serves until a Shutdown call, SIGTERM or SIGINT (blocked in the calling
// thread, so call it before starting other threads; it returns OK, so the process exits 0, also
// as PID 1), or until `parent_pid` (when > 0) is gone. A worker without a parent never exits
// because a coordinator went away: the lease lapses and it waits for the next one.
// Load builds the executor (joins the TP/PP groups, loads this rank's slice); Step and StepStream
// run plans one at a time. Errors become gRPC statuses with the same code and message.
// Thread-safe: gRPC threads call the service; one step runs at a time.
//
// Group identity (DESIGN.md §8): every call must carry `group_secret` (else UNAUTHENTICATED,
// before anything else happens); Claim, and the lease rules of worker/lease.h, decide which
// coordinator owns the worker. A worker without a secret refuses to start. With `tls` (cert, key
// and a client CA) the control plane is mTLS: only clients with a certificate signed by that CA
// get through the handshake. grpc.health.v1 stays open (orchestrator probes).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "auth/tls_files.h"

namespace tandem::worker {

struct WorkerServerOptions {
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  int parent_pid = 0;
  std::string group_secret;  // required (auth/group_identity.h)
  absl::Duration lease_ttl = absl::Seconds(5);
  auth::TlsFiles tls;     // empty: plaintext
  int metrics_port = -1;  // Prometheus /metrics on the host of `listen`; -1: off, 0: any port
};

[[nodiscard]] absl::Status RunWorkerServer(const WorkerServerOptions& options);

}  // namespace tandem::worker
