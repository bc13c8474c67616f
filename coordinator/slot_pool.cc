#include "coordinator/slot_pool.h"

#include "absl/strings/str_cat.h"

namespace tandem::coordinator {

SlotPool::SlotPool(int32_t capacity) : capacity_(capacity < 0 ? 0 : capacity) {
  for (int32_t i = 0; i < capacity_; ++i) free_.insert(free_.end(), i);
}

std::optional<int32_t> SlotPool::Allocate() {
  if (free_.empty()) return std::nullopt;
  const int32_t slot = *free_.begin();
  free_.erase(free_.begin());
  return slot;
}

absl::Status SlotPool::Free(int32_t slot) {
  if (slot < 0 || slot >= capacity_) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot ", slot, " is outside the pool [0, ", capacity_, ")"));
  }
  if (!free_.insert(slot).second) {
    return absl::FailedPreconditionError(absl::StrCat("slot ", slot, " is already free"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::coordinator
