// What a model shard needs to know about tensor parallelism: its TP rank and size, and how to
// sum partial results across the TP group.
//
// Layers hold only their rank's slice (heads, groups, channels, vocabulary rows: see the model
// spec §4) and call AllReducer::AllReduceSum once per layer on their partial output. With
// tp_size == 1 the reducer may be null. The AllReducer is owned by the caller (the worker, which
// wraps a comm::Communicator) and must outlive the model; calls come from one thread at a time.
#pragma once

#include <cstddef>

#include "absl/status/status.h"

namespace tandem::model {

class AllReducer {
 public:
  virtual ~AllReducer() = default;
  // In-place elementwise sum of `n` floats over all TP ranks.
  [[nodiscard]] virtual absl::Status AllReduceSum(float* data, size_t n) = 0;
};

struct TensorParallel {
  int rank = 0;
  int size = 1;
  AllReducer* reducer = nullptr;  // required when size > 1

  [[nodiscard]] absl::Status AllReduce(float* data, size_t n) const {
    if (size == 1) return absl::OkStatus();
    return reducer->AllReduceSum(data, n);
  }
};

}  // namespace tandem::model
