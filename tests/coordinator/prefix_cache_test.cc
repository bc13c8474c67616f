// PrefixCache on its own: exact matching by block tokens, users protect nodes, LRU eviction of
// leaves and of idle snapshots, Clear.
#include "coordinator/prefix_cache.h"

#include <algorithm>
#include <random>

#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

std::vector<int32_t> Tokens(std::initializer_list<int32_t> t) { return t; }

// Inserts every full block of `tokens` (blocks numbered from `first_block`) and attaches
// `snapshot` to the last node when >= 0; returns the path. The caller stays a user.
std::vector<PrefixCache::Node*> InsertAll(PrefixCache& c, const std::vector<int32_t>& tokens,
                                          int32_t first_block, int32_t snapshot) {
  std::vector<PrefixCache::Node*> path;
  for (int64_t b = 0; b + c.block_size() <= static_cast<int64_t>(tokens.size());
       b += c.block_size()) {
    path.push_back(c.Insert(path.empty() ? nullptr : path.back(), tokens, b,
                            first_block + static_cast<int32_t>(path.size())));
  }
  if (snapshot >= 0) c.AttachSnapshot(path.back(), snapshot);
  return path;
}

void ReleaseAll(PrefixCache& c, const std::vector<PrefixCache::Node*>& path) {
  for (auto* n : path) c.Release(n);
}

TEST(PrefixCacheTest, MatchesOnlyExactBlocksUpToTheDeepestSnapshot) {
  PrefixCache c(/*block_size=*/2, /*num_snapshots=*/4);
  const auto a = Tokens({1, 2, 3, 4, 5, 6, 7});
  auto id = c.AllocateSnapshot();
  ASSERT_TRUE(id.has_value());
  auto path = InsertAll(c, a, 10, -1);  // blocks 10, 11, 12
  ASSERT_EQ(path.size(), 3u);
  c.AttachSnapshot(path[1], *id);  // state at position 4
  ReleaseAll(c, path);

  auto m = c.Lookup(a, 6);
  EXPECT_EQ(m.tokens, 4);
  EXPECT_EQ(m.snapshot, *id);
  EXPECT_EQ(m.shared_tokens, 6);
  ASSERT_EQ(m.path.size(), 2u);
  EXPECT_EQ(m.path[0]->block(), 10);
  EXPECT_EQ(m.path[1]->block(), 11);
  // The limit: at least the last token is left to compute.
  m = c.Lookup(a, 3);
  EXPECT_EQ(m.tokens, 0);
  EXPECT_EQ(m.shared_tokens, 2);
  // One token different in the second block: only the first block matches, no snapshot there.
  m = c.Lookup(Tokens({1, 2, 3, 9, 5, 6, 7}), 6);
  EXPECT_EQ(m.tokens, 0);
  EXPECT_EQ(m.snapshot, -1);
  EXPECT_EQ(m.shared_tokens, 2);
  EXPECT_TRUE(m.path.empty());
  EXPECT_EQ(c.Stats().cached_blocks, 3);
}

TEST(PrefixCacheTest, AnEqualBlockInsertedTwiceKeepsTheFirst) {
  PrefixCache c(2, 1);
  const auto a = Tokens({1, 2, 3, 4});
  auto first = InsertAll(c, a, 0, -1);
  auto second = InsertAll(c, a, 5, -1);
  EXPECT_EQ(first, second);
  EXPECT_EQ(second[0]->block(), 0);  // the second caller keeps its blocks 5, 6
  EXPECT_EQ(second[0]->users(), 2);
  EXPECT_EQ(c.Stats().cached_blocks, 2);
  ReleaseAll(c, first);
  ReleaseAll(c, second);
  EXPECT_EQ(c.evictable_blocks(), 2);
}

TEST(PrefixCacheTest, EvictsLeastRecentlyUsedLeavesWithoutUsers) {
  PrefixCache c(1, 0);
  auto x = InsertAll(c, Tokens({1, 2, 3}), 0, -1);  // chain 0 -> 1 -> 2
  auto y = InsertAll(c, Tokens({1, 5}), 10, -1);    // shares node 0, adds 10's second block
  ASSERT_EQ(y[1]->block(), 11);
  ReleaseAll(c, x);                    // x's nodes are released first: older
  EXPECT_EQ(c.evictable_blocks(), 2);  // nodes 1, 2 (node 0 still has y)
  auto evicted = c.EvictBlocks(1);
  EXPECT_EQ(evicted, std::vector<int32_t>{2});  // a leaf, not its parent
  ReleaseAll(c, y);
  evicted = c.EvictBlocks(10);
  std::sort(evicted.begin(), evicted.end());
  EXPECT_EQ(evicted, (std::vector<int32_t>{0, 1, 11}));
  EXPECT_EQ(c.Stats().cached_blocks, 0);
  EXPECT_EQ(c.Stats().evicted_blocks, 4);
  // Nodes in use are never evicted.
  auto z = InsertAll(c, Tokens({4, 4}), 20, -1);
  EXPECT_TRUE(c.EvictBlocks(5).empty());
  ReleaseAll(c, z);
}

TEST(PrefixCacheTest, SnapshotsOfIdleNodesAreReusedLeastRecentFirst) {
  PrefixCache c(2, 2);
  auto s0 = c.AllocateSnapshot();
  auto s1 = c.AllocateSnapshot();
  ASSERT_TRUE(s0 && s1);
  EXPECT_FALSE(c.AllocateSnapshot().has_value());  // both pending (not attached yet)
  auto a = InsertAll(c, Tokens({1, 1}), 0, *s0);
  auto b = InsertAll(c, Tokens({2, 2}), 1, *s1);
  EXPECT_FALSE(c.AllocateSnapshot().has_value());  // both nodes in use
  ReleaseAll(c, b);
  ReleaseAll(c, a);  // a is the more recent
  auto reused = c.AllocateSnapshot();
  ASSERT_TRUE(reused.has_value());
  EXPECT_EQ(*reused, *s1);  // b's, the least recently used
  EXPECT_EQ(c.Lookup(Tokens({2, 2, 9}), 2).tokens, 0);
  EXPECT_EQ(c.Lookup(Tokens({1, 1, 9}), 2).tokens, 2);
  EXPECT_EQ(c.Stats().evicted_snapshots, 1);
  // Attaching to a node that already has one returns the entry to the pool.
  auto again = InsertAll(c, Tokens({1, 1}), 7, *reused);
  EXPECT_EQ(c.Stats().used_snapshots, 1);
  ReleaseAll(c, again);
  // Dropping a node drops its snapshot.
  EXPECT_EQ(c.EvictBlocks(2).size(), 2u);
  EXPECT_EQ(c.Stats().used_snapshots, 0);
}

TEST(PrefixCacheTest, ClearReturnsEveryBlockAndSnapshot) {
  std::mt19937 rng(std::random_device{}());
  PrefixCache c(4, 8);
  int32_t next_block = 0;
  std::vector<int32_t> all;
  for (int i = 0; i < 20; ++i) {
    std::vector<int32_t> t;
    const int n = 4 + static_cast<int>(rng() % 20);
    for (int k = 0; k < n; ++k) t.push_back(static_cast<int32_t>(rng() % 3));
    auto path = InsertAll(c, t, next_block, -1);
    for (auto* node : path) {
      if (node->block() >= next_block) all.push_back(node->block());
    }
    next_block += static_cast<int32_t>(path.size());
    if (auto id = c.AllocateSnapshot()) c.AttachSnapshot(path.back(), *id);
    ReleaseAll(c, path);
  }
  EXPECT_EQ(c.Stats().cached_blocks, static_cast<int64_t>(all.size()));
  std::vector<int32_t> got = c.Clear();
  std::sort(got.begin(), got.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(got, all);
  EXPECT_EQ(c.Stats().cached_blocks, 0);
  EXPECT_EQ(c.Stats().used_snapshots, 0);
  EXPECT_EQ(c.evictable_blocks(), 0);
}

}  // namespace
}  // namespace tandem::coordinator
