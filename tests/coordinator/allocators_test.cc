#include <random>
#include <set>

#include "coordinator/block_allocator.h"
#include "coordinator/slot_pool.h"
#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

TEST(SlotPoolTest, HandsOutEachSlotOnceAndTakesThemBack) {
  SlotPool pool(4);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) {
    auto s = pool.Allocate();
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(got.insert(*s).second);
  }
  EXPECT_FALSE(pool.Allocate().has_value());
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_TRUE(pool.Free(2).ok());
  EXPECT_EQ(pool.Allocate(), std::optional<int32_t>(2));
  for (int32_t s : got) EXPECT_TRUE(pool.Free(s).ok());
  EXPECT_EQ(pool.num_free(), 4);
}

TEST(SlotPoolTest, RejectsBadFrees) {
  SlotPool pool(2);
  EXPECT_EQ(pool.Free(5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(pool.Free(5).message().find("slot 5"), std::string::npos);
  EXPECT_EQ(pool.Free(-1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.Free(0).code(), absl::StatusCode::kFailedPrecondition);  // already free
}

TEST(BlockAllocatorTest, BlocksForRoundsUp) {
  BlockAllocator a(10, 16);
  EXPECT_EQ(a.BlocksFor(0), 0);
  EXPECT_EQ(a.BlocksFor(1), 1);
  EXPECT_EQ(a.BlocksFor(16), 1);
  EXPECT_EQ(a.BlocksFor(17), 2);
}

TEST(BlockAllocatorTest, AllOrNothingAndRandomChurnNeverDoubleAllocates) {
  BlockAllocator a(64, 4);
  EXPECT_FALSE(a.Allocate(65).has_value());
  EXPECT_EQ(a.num_free(), 64);
  std::mt19937 rng(std::random_device{}());
  std::vector<std::vector<int32_t>> held;
  std::set<int32_t> owned;
  for (int it = 0; it < 2000; ++it) {
    if (held.empty() || rng() % 2 == 0) {
      const int64_t n = rng() % 9;
      auto got = a.Allocate(n);
      if (n > 64 - static_cast<int64_t>(owned.size())) {
        EXPECT_FALSE(got.has_value());
        continue;
      }
      ASSERT_TRUE(got.has_value());
      for (int32_t b : *got) EXPECT_TRUE(owned.insert(b).second) << "block " << b << " twice";
      held.push_back(*got);
    } else {
      const size_t i = rng() % held.size();
      ASSERT_TRUE(a.Free(held[i]).ok());
      for (int32_t b : held[i]) owned.erase(b);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_EQ(a.num_free(), 64 - static_cast<int32_t>(owned.size()));
  }
}

TEST(BlockAllocatorTest, RejectsBadFreesWithoutFreeingAny) {
  BlockAllocator a(8, 4);
  auto got = a.Allocate(2);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(a.Free({(*got)[0], 99}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.num_free(), 6);
  EXPECT_EQ(a.Free({(*got)[0], (*got)[0]}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.Free({7}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(a.Free(*got).ok());
  EXPECT_EQ(a.num_free(), 8);
}

}  // namespace
}  // namespace tandem::coordinator
