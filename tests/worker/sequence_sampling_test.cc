// SequenceSamplingParams: a plan's sampling parameters are bounded by what they can mean, and a
// parameter the sampler cannot use is an error naming it (never a CHECK failure).
#include "worker/sequence_sampling.h"

#include <cfloat>
#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace tandem::worker {
namespace {

namespace pb = ::tandem::worker::v1;

pb::SequenceStep Step() {
  pb::SequenceStep s;
  s.add_token_ids(1);
  s.mutable_sampling()->set_temperature(1.0f);
  return s;
}

TEST(SequenceSamplingTest, TopKAtOrAboveTheVocabularyIsOff) {
  for (int32_t k : {1000, 1001, 20000000, std::numeric_limits<int32_t>::max()}) {
    pb::SequenceStep s = Step();
    s.mutable_sampling()->set_top_k(k);
    auto p = SequenceSamplingParams(s, 1000);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->top_k, 0) << k;
  }
  pb::SequenceStep s = Step();
  s.mutable_sampling()->set_top_k(999);
  EXPECT_EQ(SequenceSamplingParams(s, 1000)->top_k, 999);
}

TEST(SequenceSamplingTest, TinyTemperatureIsGreedyAndHugeIsKept) {
  pb::SequenceStep s = Step();
  s.mutable_sampling()->set_temperature(std::numeric_limits<float>::denorm_min());
  EXPECT_EQ(SequenceSamplingParams(s, 10)->temperature, 0.0f);
  s.mutable_sampling()->set_temperature(FLT_MAX);
  EXPECT_EQ(SequenceSamplingParams(s, 10)->temperature, FLT_MAX);
}

TEST(SequenceSamplingTest, UnusableValuesAreErrorsNamingTheField) {
  struct Case {
    const char* field;
    void (*set)(pb::SamplingParams*);
  };
  const Case cases[] = {
      {"sampling.temperature", [](pb::SamplingParams* p) { p->set_temperature(-1.0f); }},
      {"sampling.temperature",
       [](pb::SamplingParams* p) { p->set_temperature(std::numeric_limits<float>::infinity()); }},
      {"sampling.temperature",
       [](pb::SamplingParams* p) { p->set_temperature(std::numeric_limits<float>::quiet_NaN()); }},
      {"sampling.top_k", [](pb::SamplingParams* p) { p->set_top_k(-1); }},
      {"sampling.top_p", [](pb::SamplingParams* p) { p->set_top_p(1.5f); }},
      {"sampling.top_p",
       [](pb::SamplingParams* p) { p->set_top_p(std::numeric_limits<float>::quiet_NaN()); }},
      {"sampling.min_p", [](pb::SamplingParams* p) { p->set_min_p(-0.5f); }},
      {"sampling.repetition_penalty", [](pb::SamplingParams* p) { p->set_repetition_penalty(-1); }},
      {"sampling.repetition_penalty",
       [](pb::SamplingParams* p) {
         p->set_repetition_penalty(std::numeric_limits<float>::infinity());
       }},
      {"sampling.presence_penalty",
       [](pb::SamplingParams* p) {
         p->set_presence_penalty(-std::numeric_limits<float>::infinity());
       }},
      {"sampling.frequency_penalty",
       [](pb::SamplingParams* p) {
         p->set_frequency_penalty(std::numeric_limits<float>::quiet_NaN());
       }},
  };
  for (const Case& c : cases) {
    pb::SequenceStep s = Step();
    c.set(s.mutable_sampling());
    const auto p = SequenceSamplingParams(s, 10);
    ASSERT_FALSE(p.ok()) << c.field;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().message().rfind(std::string(c.field) + ":", 0), 0u) << p.status();
  }
}

TEST(SequenceSamplingTest, TopLogprobsIsClamped) {
  pb::SequenceStep s = Step();
  s.set_top_logprobs(std::numeric_limits<int32_t>::max());
  EXPECT_EQ(SequenceTopLogprobs(s), kMaxTopLogprobs);
  s.set_top_logprobs(-7);
  EXPECT_EQ(SequenceTopLogprobs(s), 0);
}

}  // namespace
}  // namespace tandem::worker
