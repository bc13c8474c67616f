// BlockAllocator: the coordinator's paged KV block allocator.
//
// Capacity is the smallest num_blocks reported by the workers of a replica; every block holds
// block_size token positions of every attention layer. A sequence of n positions needs
// ceil(n / block_size) blocks (BlocksFor). Allocation is all-or-nothing and hands out the lowest
// free ids. Not thread-safe: owned by the scheduler thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "absl/status/status.h"

namespace tandem::coordinator {

class BlockAllocator {
 public:
  BlockAllocator(int32_t num_blocks, int32_t block_size);

  // Blocks needed to hold `num_positions` positions.
  int64_t BlocksFor(int64_t num_positions) const;

  // `count` blocks, or nullopt (nothing allocated) when fewer are free.
  std::optional<std::vector<int32_t>> Allocate(int64_t count);
  // Returns the blocks; fails naming the first block out of range or already free (and then frees
  // none of them).
  [[nodiscard]] absl::Status Free(const std::vector<int32_t>& blocks);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }

 private:
  int32_t num_blocks_;
  int32_t block_size_;
  std::set<int32_t> free_;
};

}  // namespace tandem::coordinator
