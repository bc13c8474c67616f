#include "coordinator/block_allocator.h"

#include "absl/strings/str_cat.h"

namespace tandem::coordinator {

BlockAllocator::BlockAllocator(int32_t num_blocks, int32_t block_size)
    : num_blocks_(num_blocks < 0 ? 0 : num_blocks), block_size_(block_size < 1 ? 1 : block_size) {
  for (int32_t i = 0; i < num_blocks_; ++i) free_.insert(free_.end(), i);
}

int64_t BlockAllocator::BlocksFor(int64_t num_positions) const {
  if (num_positions <= 0) return 0;
  return (num_positions + block_size_ - 1) / block_size_;
}

std::optional<std::vector<int32_t>> BlockAllocator::Allocate(int64_t count) {
  if (count < 0 || count > static_cast<int64_t>(free_.size())) return std::nullopt;
  std::vector<int32_t> blocks;
  blocks.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    blocks.push_back(*free_.begin());
    free_.erase(free_.begin());
  }
  return blocks;
}

absl::Status BlockAllocator::Free(const std::vector<int32_t>& blocks) {
  std::set<int32_t> seen;
  for (int32_t b : blocks) {
    if (b < 0 || b >= num_blocks_) {
      return absl::InvalidArgumentError(
          absl::StrCat("block ", b, " is outside the pool [0, ", num_blocks_, ")"));
    }
    if (free_.count(b) > 0 || !seen.insert(b).second) {
      return absl::FailedPreconditionError(absl::StrCat("block ", b, " is already free"));
    }
  }
  free_.insert(blocks.begin(), blocks.end());
  return absl::OkStatus();
}

}  // namespace tandem::coordinator
