#include "sharding/layer_partition.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sharding/test_configs.h"

namespace tandem::sharding {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

int64_t MaxStageCost(const core::ModelConfig& c, const std::vector<LayerRange>& partition) {
  const auto costs = StageCosts(ComputePartitionCosts(c), partition);
  return *std::max_element(costs.begin(), costs.end());
}

// The smallest possible largest stage cost, by trying every placement of the pp - 1 cuts.
int64_t BruteForceBest(const core::ModelConfig& c, int pp) {
  const int64_t n = c.num_hidden_layers;
  int64_t best = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> cuts(pp - 1);
  // Enumerate strictly increasing cuts in [1, n - 1].
  std::function<void(int, int64_t)> place = [&](int k, int64_t from) {
    if (k == pp - 1) {
      std::vector<LayerRange> partition;
      int64_t begin = 0;
      for (int64_t cut : cuts) {
        partition.push_back({begin, cut});
        begin = cut;
      }
      partition.push_back({begin, n});
      best = std::min(best, MaxStageCost(c, partition));
      return;
    }
    for (int64_t cut = from; cut <= n - (pp - 1 - k); ++cut) {
      cuts[k] = cut;
      place(k + 1, cut + 1);
    }
  };
  place(0, 1);
  return best;
}

TEST(LayerPartitionTest, CoversAllLayersContiguously) {
  for (const char* name : {"nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b"}) {
    const auto c = LoadShippedConfig(name);
    for (int pp : {1, 2, 3, 4, 5, 8, 16, static_cast<int>(c.num_hidden_layers)}) {
      SCOPED_TRACE(std::string(name) + " pp=" + std::to_string(pp));
      auto partition = BalancedPartition(c, pp);
      ASSERT_TRUE(partition.ok()) << partition.status();
      EXPECT_TRUE(ValidatePartition(*partition, pp, c.num_hidden_layers).ok());
    }
  }
}

TEST(LayerPartitionTest, MinimisesTheLargestStageOnRandomPatterns) {
  std::mt19937 rng(12345);
  const auto base = LoadShippedConfig("nemotron-h-8b");
  const char kinds[] = {'M', '*', '-'};
  for (int trial = 0; trial < 40; ++trial) {
    const int n = 4 + static_cast<int>(rng() % 9);
    std::string pattern;
    for (int i = 0; i < n; ++i) pattern.push_back(kinds[rng() % 3]);
    const auto c = WithPattern(base, pattern);
    for (int pp = 1; pp <= std::min(n, 4); ++pp) {
      SCOPED_TRACE(pattern + " pp=" + std::to_string(pp));
      auto partition = BalancedPartition(c, pp);
      ASSERT_TRUE(partition.ok()) << partition.status();
      ASSERT_TRUE(ValidatePartition(*partition, pp, n).ok());
      EXPECT_EQ(MaxStageCost(c, *partition), BruteForceBest(c, pp));
    }
  }
}

TEST(LayerPartitionTest, IsDeterministicAndUneven) {
  const auto c = LoadShippedConfig("nemotron-h-8b");
  auto a = BalancedPartition(c, 3);
  auto b = BalancedPartition(c, 3);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  // The last stage also holds lm_head (1 GiB in bf16), so it gets fewer layers than stage 0.
  EXPECT_LT((*a)[2].size(), (*a)[0].size());
}

TEST(LayerPartitionTest, CostModel) {
  const auto c = LoadShippedConfig("nemotron-h-8b");
  const PartitionCosts costs = ComputePartitionCosts(c);
  ASSERT_EQ(costs.layer.size(), 52u);
  // Mamba: weights + fp32 SSM state + bf16 conv state of one sequence.
  EXPECT_EQ(costs.layer[0], 2 * 109640064LL + 100663296 / 24 + 1474560 / 24);
  // MLP: weights only.
  EXPECT_EQ(costs.layer[1], 2 * (2LL * 21504 * 4096 + 4096));
  // Attention: weights + K and V of max_position_embeddings tokens.
  EXPECT_EQ(costs.layer[7], 2 * (2LL * 4096 * 4096 + 2LL * 1024 * 4096 + 4096) + 4096LL * 8192);
  EXPECT_EQ(costs.first_stage_extra, 2 * 4096);
  EXPECT_EQ(costs.last_stage_extra, 2 * (4096 + 131072LL * 4096));
  EXPECT_THAT(StageCosts(costs, {{0, 1}, {1, 2}}),
              ElementsAre(costs.layer[0] + costs.first_stage_extra,
                          costs.layer[1] + costs.last_stage_extra));
}

TEST(LayerPartitionTest, RejectsImpossiblePp) {
  const auto c = LoadShippedConfig("nemotron-h-8b");
  for (int pp : {0, 53}) {
    auto p = BalancedPartition(c, pp);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()),
                HasSubstr("is not in [1, num_hidden_layers = 52]"));
  }
}

TEST(LayerPartitionTest, ExplicitSizes) {
  const auto c = WithPattern(LoadShippedConfig("nemotron-h-8b"), "M-M*-M-M*-M");
  auto p = PartitionFromSizes(c, {4, 4, 3});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(*p, ElementsAre(LayerRange{0, 4}, LayerRange{4, 8}, LayerRange{8, 11}));
  p = PartitionFromSizes(c, {4, 4, 2});
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("layer partition 4,4,2 has 10 layers but the model has 11"));
  p = PartitionFromSizes(c, {11, 0});
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("every stage needs at least one layer"));
}

}  // namespace
}  // namespace tandem::sharding
