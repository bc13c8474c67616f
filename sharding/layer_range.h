// LayerRange: a contiguous range [begin, end) of decoder layer indices (a pipeline stage's
// layers), and the check that a list of them is a partition of a model's layers.
// Plain values and pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tandem::sharding {

struct LayerRange {
  int64_t begin = 0;
  int64_t end = 0;

  int64_t size() const { return end - begin; }
  bool Contains(int64_t layer) const { return layer >= begin && layer < end; }
  bool operator==(const LayerRange&) const = default;
  std::string ToString() const;  // "[0, 4)"
};

// OK iff `partition` has `num_stages` non-empty ranges that cover [0, num_layers) in order.
[[nodiscard]] absl::Status ValidatePartition(const std::vector<LayerRange>& partition,
                                             int64_t num_stages, int64_t num_layers);

}  // namespace tandem::sharding
