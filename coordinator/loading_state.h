// LoadingState: how far the first load of the worker group has got. `tandem serve` starts its
// gRPC server before the workers load (a 56B checkpoint takes minutes), so that health answers
// NOT_SERVING, GetModelInfo reports STATE_LOADING with this progress and a generation is refused
// UNAVAILABLE naming it, instead of the port refusing connections (docs/serving.md, "Loading").
//
// The launcher writes it from the worker group's start callbacks (worker/local_cluster.h:
// on_loading, on_rank_loaded); the service and the metrics read it. A rank reports the checkpoint
// bytes it read only once it has loaded, so bytes_loaded counts the loaded ranks only. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "absl/time/time.h"

namespace tandem::coordinator {

struct LoadingStatus {
  int32_t ranks_total = 0;
  int32_t ranks_loaded = 0;
  // Checkpoint bytes read by the ranks that have loaded (a rank reports its count once loaded).
  int64_t bytes_loaded = 0;
  // False until every rank answers and the weights are being read (workers starting, or remote
  // workers not up yet).
  bool workers_up = false;
  absl::Time since;  // when the load began
  // "loading the model (1 of 4 ranks loaded)", "... (0 of 4 ranks loaded; waiting for the
  // workers to start)".
  std::string Reason() const;
};

class LoadingState {
 public:
  explicit LoadingState(int32_t ranks_total);

  // Every rank answers and has been claimed: the weights are being read.
  void WorkersUp();
  // One more rank loaded, having read `checkpoint_bytes` of the checkpoint.
  void RankLoaded(int64_t checkpoint_bytes);
  LoadingStatus Get() const;

 private:
  mutable std::mutex mu_;
  LoadingStatus status_;
};

}  // namespace tandem::coordinator
