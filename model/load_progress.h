// LoadProgress: log lines while a rank loads its weights (a 56B checkpoint takes minutes):
// layers done of the stage's, checkpoint bytes read, tensors, read rate and an ETA extrapolated
// from the layers done. At most one line per `interval` and one at the end. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace tandem::model {

class LoadProgress {
 public:
  LoadProgress(int64_t total_layers, std::chrono::steady_clock::duration interval);
  // After each layer (and the embedding / head): `layers_done` of total, the loader's counts.
  void Update(int64_t layers_done, uint64_t bytes_read, int64_t tensors);
  // The last line ("loaded ... in S s").
  void Finish(uint64_t bytes_read, int64_t tensors);

 private:
  int64_t total_layers_;
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace tandem::model
