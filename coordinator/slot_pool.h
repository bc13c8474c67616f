// SlotPool: the coordinator's allocator of SSM/conv state slots (one per sequence in flight).
//
// Capacity is the smallest num_slots reported by the workers of a replica. Allocation hands out the
// lowest free slot id (deterministic plans). Not thread-safe: owned by the scheduler thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>

#include "absl/status/status.h"

namespace tandem::coordinator {

class SlotPool {
 public:
  explicit SlotPool(int32_t capacity);

  // The lowest free slot, or nullopt when all are in use.
  std::optional<int32_t> Allocate();
  // Fails naming the slot when it is out of range or not allocated.
  [[nodiscard]] absl::Status Free(int32_t slot);

  int32_t capacity() const { return capacity_; }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }

 private:
  int32_t capacity_;
  std::set<int32_t> free_;
};

}  // namespace tandem::coordinator
