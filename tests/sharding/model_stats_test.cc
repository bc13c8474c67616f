#include "sharding/model_stats.h"

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sharding/layer_partition.h"
#include "tests/sharding/test_configs.h"

namespace tandem::sharding {
namespace {

using ::testing::HasSubstr;

struct Expected {
  const char* name;
  int64_t parameters, mamba, attention, mlp, ssm_bytes, conv_bytes, kv_bytes;
};

// Model spec §1.3, §7.1, §7.2.
const Expected kReal[] = {
    {"nemotron-h-8b", 8100852736, 24, 4, 24, 100663296, 1474560, 16384},
    {"nemotron-h-47b", 46791554816, 45, 5, 48, 754974720, 5529600, 20480},
    {"nemotron-h-56b", 56324350464, 54, 10, 54, 905969664, 6635520, 40960},
};

// Elements of a tensor on one of `tp` ranks: norms replicated, everything else split.
int64_t LocalElements(const core::ExpectedTensor& t, int tp) {
  const bool replicated =
      absl::EndsWith(t.name, "norm_f.weight") ||
      (absl::EndsWith(t.name, ".norm.weight") && !absl::StrContains(t.name, "mixer"));
  return core::NumElements(t.shape) / (replicated ? 1 : tp);
}

TEST(ModelStatsTest, RealModelsMatchTheSpec) {
  for (const Expected& e : kReal) {
    SCOPED_TRACE(e.name);
    const auto c = LoadShippedConfig(e.name);
    const ModelStats s = WholeModelStats(c);
    EXPECT_EQ(s.parameters, e.parameters);
    EXPECT_EQ(s.weight_bytes, 2 * e.parameters);
    EXPECT_EQ(s.mamba_layers, e.mamba);
    EXPECT_EQ(s.attention_layers, e.attention);
    EXPECT_EQ(s.mlp_layers, e.mlp);
    EXPECT_EQ(s.ssm_state_bytes_per_sequence, e.ssm_bytes);
    EXPECT_EQ(s.conv_state_bytes_per_sequence, e.conv_bytes);
    EXPECT_EQ(s.kv_bytes_per_token, e.kv_bytes);
  }
}

TEST(ModelStatsTest, DTypeAware) {
  auto c = LoadShippedConfig("nemotron-h-8b");
  c.torch_dtype = core::DType::kF32;
  const ModelStats s = WholeModelStats(c);
  EXPECT_EQ(s.weight_bytes, 4 * 8100852736);
  EXPECT_EQ(s.ssm_state_bytes_per_sequence, 100663296);  // fp32 regardless
  EXPECT_EQ(s.conv_state_bytes_per_sequence, 2 * 1474560);
  EXPECT_EQ(s.kv_bytes_per_token, 2 * 16384);
}

TEST(ModelStatsTest, TensorParallelRankHoldsItsSlices) {
  for (const Expected& e : kReal) {
    const auto c = LoadShippedConfig(e.name);
    for (int tp : {1, 2, 4, 8}) {
      SCOPED_TRACE(std::string(e.name) + " tp=" + std::to_string(tp));
      const ModelStats s = RankStats(c, tp, LayerRange{0, c.num_hidden_layers}, true, true);
      int64_t local = 0;
      for (const auto& t : core::ExpectedTensors(c)) local += LocalElements(t, tp);
      EXPECT_EQ(s.parameters, local);
      EXPECT_EQ(s.ssm_state_bytes_per_sequence * tp, e.ssm_bytes);
      EXPECT_EQ(s.conv_state_bytes_per_sequence * tp, e.conv_bytes);
      EXPECT_EQ(s.kv_bytes_per_token * tp, e.kv_bytes);
      EXPECT_EQ(s.mamba_layers, e.mamba);  // every rank runs every layer of its stage
    }
  }
}

TEST(ModelStatsTest, StagesAddUpToTheWholeModel) {
  const auto c = LoadShippedConfig("nemotron-h-56b");
  const ModelStats whole = WholeModelStats(c);
  for (int pp : {1, 2, 3, 4, 7}) {
    SCOPED_TRACE(pp);
    auto partition = BalancedPartition(c, pp);
    ASSERT_TRUE(partition.ok()) << partition.status();
    auto stages = ComputeStageStats(c, ParallelConfig{1, pp}, *partition);
    ASSERT_TRUE(stages.ok()) << stages.status();
    ASSERT_EQ(stages->size(), static_cast<size_t>(pp));
    ModelStats sum;
    for (const StageStats& st : *stages) {
      EXPECT_EQ(st.layers, (*partition)[st.stage]);
      sum.parameters += st.per_rank.parameters;
      sum.weight_bytes += st.per_rank.weight_bytes;
      sum.mamba_layers += st.per_rank.mamba_layers;
      sum.attention_layers += st.per_rank.attention_layers;
      sum.mlp_layers += st.per_rank.mlp_layers;
      sum.ssm_state_bytes_per_sequence += st.per_rank.ssm_state_bytes_per_sequence;
      sum.conv_state_bytes_per_sequence += st.per_rank.conv_state_bytes_per_sequence;
      sum.kv_bytes_per_token += st.per_rank.kv_bytes_per_token;
    }
    EXPECT_EQ(sum, whole);
  }
}

TEST(ModelStatsTest, EmbeddingOnFirstStageHeadOnLast) {
  const auto c = LoadShippedConfig("nemotron-h-8b");
  const int64_t vocab_matrix = 131072LL * 4096;
  const LayerRange layer0{0, 1};
  const int64_t layer = LayerParameters(c, core::LayerKind::kMamba);
  EXPECT_EQ(RankStats(c, 1, layer0, false, false).parameters, layer);
  EXPECT_EQ(RankStats(c, 1, layer0, true, false).parameters, layer + vocab_matrix);
  EXPECT_EQ(RankStats(c, 1, layer0, false, true).parameters, layer + vocab_matrix + 4096);
  EXPECT_EQ(RankStats(c, 4, layer0, true, false).parameters,
            LayerParameters(c, core::LayerKind::kMamba, 4) + vocab_matrix / 4);

  auto tied = c;
  tied.tie_word_embeddings = true;
  EXPECT_EQ(WholeModelStats(tied).parameters, 8100852736 - vocab_matrix);
  // With pp > 1 the last stage needs its own copy of the tied matrix.
  EXPECT_EQ(RankStats(tied, 1, layer0, false, true).parameters, layer + vocab_matrix + 4096);
}

TEST(ModelStatsTest, StageStatsRejectBadInput) {
  const auto c = LoadShippedConfig("nemotron-h-8b");
  auto s = ComputeStageStats(c, ParallelConfig{3, 2}, {{0, 26}, {26, 52}});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("tp=3 does not divide"));
  s = ComputeStageStats(c, ParallelConfig{1, 2}, {{0, 52}});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("has 1 stages, expected 2"));
  s = ComputeStageStats(c, ParallelConfig{1, 2}, {{0, 20}, {21, 52}});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("stage 1 is [21, 52)"));
  s = ComputeStageStats(c, ParallelConfig{1, 2}, {{0, 20}, {20, 50}});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("covers layers [0, 50) of 52"));
}

}  // namespace
}  // namespace tandem::sharding
