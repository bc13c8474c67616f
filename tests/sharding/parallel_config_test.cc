#include "sharding/parallel_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sharding/test_configs.h"

namespace tandem::sharding {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParallelConfigTest, RankArithmeticIsStageMajor) {
  const ParallelConfig p{/*tp=*/2, /*pp=*/3};
  EXPECT_EQ(p.world_size(), 6);
  int expected = 0;
  for (int stage = 0; stage < p.pp; ++stage) {
    for (int r = 0; r < p.tp; ++r) {
      const int rank = p.Rank(stage, r);
      EXPECT_EQ(rank, expected++);
      EXPECT_EQ(p.StageOf(rank), stage);
      EXPECT_EQ(p.TpRankOf(rank), r);
    }
  }
  EXPECT_EQ(p.ToString(), "tp=2 pp=3");
}

TEST(ParallelConfigTest, ValidTpSizesOfRealModels) {
  for (const char* name : {"nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b"}) {
    const auto c = LoadShippedConfig(name);
    EXPECT_THAT(ValidTpSizes(c), ElementsAre(1, 2, 4, 8)) << name;
    for (int tp : {1, 2, 4, 8}) EXPECT_TRUE((ParallelConfig{tp, 1}.Validate(c)).ok()) << tp;
  }
}

TEST(ParallelConfigTest, TpMustDivideEverySplitDimension) {
  const auto base = LoadShippedConfig("nemotron-h-8b");
  absl::Status s = ParallelConfig{3, 1}.Validate(base);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("tp=3 does not divide n_groups (8); valid tp sizes for this model: "
                        "1, 2, 4, 8"));
  s = ParallelConfig{16, 1}.Validate(base);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tp=16 does not divide n_groups (8)"));

  struct Case {
    const char* field;
    int64_t core::ModelConfig::*member;
    int64_t value;
  };
  const Case cases[] = {
      {"num_key_value_heads", &core::ModelConfig::num_key_value_heads, 2},
      {"mamba_num_heads", &core::ModelConfig::mamba_num_heads, 130},
      {"num_attention_heads", &core::ModelConfig::num_attention_heads, 34},
      {"intermediate_size", &core::ModelConfig::intermediate_size, 21502},
      {"vocab_size", &core::ModelConfig::vocab_size, 131074},
  };
  for (const Case& c : cases) {
    core::ModelConfig config = base;
    config.*c.member = c.value;
    s = ParallelConfig{4, 1}.Validate(config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(s.message()), HasSubstr(std::string("tp=4 does not divide ") + c.field +
                                                    " (" + std::to_string(c.value) + ")"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("valid tp sizes for this model: 1, 2"));
  }
  s = ParallelConfig{0, 1}.Validate(base);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tp must be at least 1, got 0"));
}

TEST(ParallelConfigTest, PpMustLeaveEveryStageALayer) {
  const auto c = LoadShippedConfig("nemotron-h-8b");
  EXPECT_TRUE((ParallelConfig{1, 52}.Validate(c)).ok());
  for (int pp : {0, -1, 53}) {
    const absl::Status s = ParallelConfig{1, pp}.Validate(c);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("pp=" + std::to_string(pp) + " is not in [1, num_hidden_layers = 52]"));
  }
}

}  // namespace
}  // namespace tandem::sharding
