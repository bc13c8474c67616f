// `tandem worker --local-ranks N`: one worker process per GPU of a node, supervised by one
// process (the container's command on Kubernetes: one pod per node, docs/deploy.md).
//
// Local rank i runs `tandem worker --listen HOST:PORT+i [--metrics-port M+i]` with
// CUDA_VISIBLE_DEVICES set to the i-th visible GPU and 1/N of the CPUs, in the supervisor's
// process group, dying with it (PR_SET_PDEATHSIG and --parent-pid). The supervisor:
//  - restarts a rank that exits, on the same port, so the coordinator can take the group back
//    (and its siblings keep their loaded shards); after `max_restarts` exits within
//    `restart_window` it stops every rank and exits 1, so the orchestrator restarts the pod;
//  - on SIGTERM or SIGINT forwards SIGTERM to every rank, waits for them (SIGKILL after
//    `stop_timeout`) and exits 0; it reaps every child, also as PID 1.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::cli {

struct LocalRanksOptions {
  int ranks = 1;
  std::string host;       // --listen HOST
  int first_port = 0;     // rank i listens on first_port + i (> 0)
  int metrics_port = -1;  // -1: off; 0: each rank a free port; else metrics_port + i
  // Further flags for every rank (e.g. --group-secret-file F, --log-format json).
  std::vector<std::string> worker_args;
  int threads_per_rank = 0;  // 0: the CPUs this process may use / ranks (at least 1)
  int max_restarts = 5;
  absl::Duration restart_window = absl::Seconds(60);
  absl::Duration stop_timeout = absl::Seconds(10);
};

// Checks `options` (ports in range, ranks in [1, 64]) without starting anything.
absl::Status CheckLocalRanks(const LocalRanksOptions& options);

// Runs the ranks until a shutdown signal (returns 0) or a rank keeps dying (returns 1). The
// calling thread must be the only one (it blocks signals and forks).
absl::StatusOr<int> RunLocalRanks(const LocalRanksOptions& options);

}  // namespace tandem::cli
