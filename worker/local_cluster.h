// LocalCluster: the launcher that runs one model replica as tp * pp real worker processes on this
// machine (`tandem worker`), serves their rendezvous store, drives them over tandem.worker.v1
// (loopback gRPC), and tears everything down.
//
// Start: a RendezvousServer on 127.0.0.1, then one `<tandem> worker` process per rank, all in one
// new process group (and each with PR_SET_PDEATHSIG, so none outlives the launcher); waits for
// their ports, then Loads every rank at once (they rendezvous with each other), everything within
// start_timeout. Each rank's stderr goes to <work dir>/rank<r>.log.
// Plans go to every rank over one StepStream per rank, in order; each worker executes them in
// stream order, so with pipeline parallelism Submit can keep one plan per stage in flight (stage 0
// starts the next micro-batch while stage 1 runs the previous one). Await returns the answer of TP
// rank 0 of the last stage to the oldest plan; Step is Submit + Await. While waiting it watches the
// processes: a rank that exits fails the step within ~100 ms with an error naming the rank, its pid
// and how it ended; any rank's error status fails it naming that rank; step_timeout bounds it.
// After a failure the cluster is unusable. The destructor asks local workers to shut down, then
// SIGKILLs the process group and reaps every child, so nothing is left behind; remote workers are
// left running (they wait for the next coordinator). Not thread-safe.
//
// Group identity (DESIGN.md §8): every call carries `credentials()` (the group secret, this
// coordinator's random id and its epoch). Local workers get a freshly generated secret through
// their environment (TANDEM_GROUP_SECRET, never argv); remote workers must have been started with
// options.group_secret. Start claims every rank with epoch = 1 + the largest epoch any of them
// reports (waiting, within start_timeout, while another coordinator's lease is alive), keeps the
// leases alive with a LeaseKeeper, and only then Loads.
//
// Liveness (issue 12): the LeaseKeeper calls Health on every rank every min(heartbeat_period,
// lease TTL / 4), each call bounded by heartbeat_timeout, idle or busy. A rank is declared dead
// when a beat fails and its local process has exited, or when it has not answered for
// liveness_timeout (frozen, unreachable, taken over). Then, once, from the heartbeat thread: the
// cluster fails (a step in flight in Await fails within ~5 ms, later Submits fail) and the
// callback given to SetOnFailure runs, so the coordinator turns NOT_SERVING with no step sent.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "auth/group_identity.h"
#include "auth/tls_files.h"
#include "tandem/worker/v1/worker.pb.h"

namespace tandem::worker {

struct LocalClusterOptions {
  std::string tandem_binary;  // the `tandem` executable ("" = /proc/self/exe)
  std::string model_dir;
  int tp = 1;
  int pp = 1;
  std::vector<int64_t> stage_layers;  // empty: balanced partition
  int64_t num_slots = 8;
  int64_t num_blocks = 256;
  int64_t block_size = 16;
  // Prefix-cache snapshot pool per rank: the most entries wanted and the byte budget (each rank
  // grants min(num_snapshots, snapshot_pool_bytes / its entry bytes); 0 = no pool).
  int64_t num_snapshots = 0;
  int64_t snapshot_pool_bytes = 0;
  std::string collective = "gloo";
  bool reference_kernels = false;
  absl::Duration start_timeout = absl::Seconds(60);
  absl::Duration step_timeout = absl::Seconds(60);
  absl::Duration comm_timeout = absl::Seconds(30);
  // Workers on other hosts: "host:port" of an already running `tandem worker --listen` per rank,
  // in rank order (tp * pp of them). Empty: launch tp * pp local worker processes.
  std::vector<std::string> worker_addresses;
  // Where the rendezvous store listens, and the host the workers reach it at (remote workers
  // need an address of this machine that they can route to).
  std::string rendezvous_bind = "127.0.0.1";
  std::string rendezvous_host;  // empty: rendezvous_bind
  // The group secret. Local workers: empty = a new random one (the usual case). Remote workers:
  // required, the one they were started with.
  std::string group_secret;
  // This coordinator's identity towards the workers ("" = a new random one). A coordinator that
  // rebuilds its group keeps its id, so it re-claims its own workers at a new epoch at once
  // instead of waiting for its old lease to lapse.
  std::string coordinator_id;
  // Lease TTL of the local workers started here (remote workers have their own --lease-ttl-ms).
  absl::Duration lease_ttl = absl::Seconds(5);
  // mTLS to remote workers (CA that signed the workers' certificates, this coordinator's
  // certificate and key); empty = plaintext.
  auth::TlsFiles worker_tls;
  // Failure detection (see the class comment).
  absl::Duration heartbeat_period = absl::Milliseconds(200);
  absl::Duration heartbeat_timeout = absl::Milliseconds(400);
  absl::Duration liveness_timeout = absl::Milliseconds(1200);
  // Local workers serve Prometheus /metrics on 127.0.0.1:<base + rank> (0: each a free port,
  // written in its log); -1: off.
  int worker_metrics_port_base = -1;
  // Start's progress, for a coordinator that reports its loading state (may be empty; they must
  // be quick). on_loading: every rank answers and is claimed, the weights are being loaded.
  // on_rank_loaded(rank, info): rank `rank` has loaded (info as Load returned it); called from
  // Start's loading threads, possibly concurrently.
  std::function<void()> on_loading;
  std::function<void(int rank, const ::tandem::worker::v1::InfoResponse& info)> on_rank_loaded;
};

// "host:pid:random": a coordinator id for the group's leases (DESIGN.md §8).
[[nodiscard]] absl::StatusOr<std::string> NewCoordinatorId();

class LocalCluster {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(
      const LocalClusterOptions& options);
  ~LocalCluster();

  [[nodiscard]] absl::StatusOr<::tandem::worker::v1::StepResponse> Step(
      ::tandem::worker::v1::StepRequest request);
  // Sends a plan to every rank (its step_id is assigned here) without waiting for the answer.
  [[nodiscard]] absl::Status Submit(::tandem::worker::v1::StepRequest request);
  // The answer to the oldest plan in flight (FAILED_PRECONDITION when none is).
  [[nodiscard]] absl::StatusOr<::tandem::worker::v1::StepResponse> Await();
  // Like Await, waiting at most `max_wait`: nullopt when the answer has not come yet (failures
  // and the step timeout are reported as by Await).
  [[nodiscard]] absl::StatusOr<std::optional<::tandem::worker::v1::StepResponse>> Poll(
      absl::Duration max_wait);
  int in_flight() const;
  // Runs `fn(reason)` once when a rank is declared dead (see the class comment), on the heartbeat
  // thread; at once if one already was. Thread-safe; SetOnFailure(nullptr) before whatever `fn`
  // uses goes away (after it returns, `fn` is not running and will not run).
  void SetOnFailure(std::function<void(const absl::Status&)> fn);
  // OK, or why a rank was declared dead.
  absl::Status detected_failure() const;
  [[nodiscard]] absl::Status Release(const std::vector<int32_t>& slots);

  // Tears the cluster down at once for a rebuild: local workers are SIGKILLed and reaped without
  // being asked to shut down (one may be frozen); remote workers are left running for the next
  // claim. The object is then only good for destruction.
  void Discard();

  int world_size() const { return world_; }
  // Whether the workers are this process's children (false: joined by address).
  bool local() const { return !pids_.empty(); }
  // Info of every rank, as of Load.
  const std::vector<::tandem::worker::v1::InfoResponse>& infos() const { return infos_; }
  const std::vector<int>& pids() const { return pids_; }
  int process_group() const { return pgid_; }
  // "127.0.0.1:<port>" of rank r's gRPC server (e.g. to open a StepStream).
  const std::string& address(int r) const { return addresses_.at(r); }
  uint64_t next_step_id() const { return next_step_id_; }
  // What every call to the workers carries (secret, coordinator id, epoch).
  const auth::GroupCredentials& credentials() const { return credentials_; }

  struct Impl;

 private:
  LocalCluster() = default;
  void Teardown(bool graceful);
  void CloseStreams();
  // UNAVAILABLE naming the first rank whose process has exited (reaping it), else OK.
  absl::Status ReapDead(uint64_t step_id);
  // Claims every rank for this coordinator at one new epoch (see the class comment).
  absl::Status ClaimAll(absl::Time deadline);
  std::unique_ptr<Impl> impl_;
  std::vector<int> pids_;
  std::vector<std::string> addresses_;
  int pgid_ = 0;
  int world_ = 0;
  std::vector<::tandem::worker::v1::InfoResponse> infos_;
  auth::GroupCredentials credentials_;
  uint64_t next_step_id_ = 1;
  int answering_rank_ = 0;
  bool failed_ = false;
};

}  // namespace tandem::worker
