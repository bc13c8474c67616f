// Sampling: greedy, seeded reproducibility, vocab-split invariance, filters, penalties, logprobs.
#include "kernels/cpu/sampling.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/test_util.h"

namespace tandem::kernels::cpu {
namespace {

using testing::RandomVector;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int32_t SampleCopy(std::vector<float> logits, const SamplingParams& params) {
  return Sample(logits.data(), static_cast<int64_t>(logits.size()), params, {}, {});
}

TEST(SamplingTest, GreedyPicksArgmaxWithTiesToLowestId) {
  SamplingParams p;  // temperature 0
  EXPECT_EQ(SampleCopy({0.1f, 3.0f, -1.0f, 2.0f}, p), 1);
  EXPECT_EQ(SampleCopy({0.5f, 2.0f, 2.0f, 2.0f}, p), 1);
  p.seed = 99;  // the seed does not matter for greedy
  p.top_k = 1;
  EXPECT_EQ(SampleCopy({0.5f, 2.0f, 2.0f, 2.0f}, p), 1);
}

TEST(SamplingTest, SameSeedSameTokenAndFrequenciesFollowProbabilities) {
  const std::vector<float> logits{std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1234;
  std::vector<int> counts(4, 0);
  const int kDraws = 20000;
  int changes = 0;
  int32_t prev = -1;
  for (int pos = 0; pos < kDraws; ++pos) {
    p.position = pos;
    const int32_t tok = SampleCopy(logits, p);
    ASSERT_EQ(SampleCopy(logits, p), tok);  // reproducible
    ++counts[tok];
    changes += tok != prev;
    prev = tok;
  }
  for (int i = 0; i < 4; ++i) {
    // Fixed seeds make this deterministic; 0.02 is ~5 standard deviations at 20000 draws.
    EXPECT_NEAR(counts[i] / double(kDraws), 0.1 * (i + 1), 0.02) << "token " << i;
  }
  EXPECT_GT(changes, kDraws / 3);
  // Another seed gives a different stream.
  int differ = 0;
  for (int pos = 0; pos < 100; ++pos) {
    p.position = pos;
    p.seed = 1234;
    const int32_t a = SampleCopy(logits, p);
    p.seed = 1235;
    differ += SampleCopy(logits, p) != a;
  }
  EXPECT_GT(differ, 20);
}

TEST(SamplingTest, SplitVocabGumbelMaximaCombineToTheFullSample) {
  std::mt19937 rng(60);
  const int64_t V = 1000;
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<float> logits = RandomVector(rng, V, -3, 3);
    SamplingParams p;
    p.temperature = 0.7f;
    p.seed = rng();
    p.position = trial;
    p.min_p = 0.05f;  // min-p is exact from per-shard maxima; applied to the full row here
    std::vector<float> full = logits;
    const int32_t want = Sample(full.data(), V, p, {}, {});
    // Shards at uneven boundaries: each computes GumbelMax over its processed logits.
    for (int64_t split : {1, 317, 500, 999}) {
      const TokenScore a = GumbelMax(full.data(), split, 0, p.seed, p.position);
      const TokenScore b = GumbelMax(full.data() + split, V - split, split, p.seed, p.position);
      EXPECT_EQ(CombinePicks(a, b).token, want) << "split " << split;
      EXPECT_EQ(CombinePicks(b, a).token, want) << "split " << split;
    }
  }
}

TEST(SamplingTest, ShardedPenaltiesTopKAndMinPEqualTheFullRowSample) {
  std::mt19937 rng(61);
  const int64_t V = 700;
  const std::vector<int32_t> prompt{3, 650, 200, 3}, output{650, 10, 10, 699};
  for (int trial = 0; trial < 40; ++trial) {
    const std::vector<float> logits = RandomVector(rng, V, -4, 4);
    SamplingParams p;
    p.temperature = 0.8f;
    p.top_k = 1 + static_cast<int32_t>(rng() % 40);
    p.min_p = trial % 2 == 0 ? 0.0f : 0.15f;
    p.repetition_penalty = 1.3f;
    p.presence_penalty = 0.2f;
    p.frequency_penalty = 0.1f;
    p.seed = rng();
    p.position = 100 + trial;
    std::vector<float> full = logits;
    const int32_t want = Sample(full.data(), V, p, prompt, output);

    // Three ranks with uneven shards: local penalties and temperature, then the reductions a TP
    // sampler performs (gather of per-rank top-k lists, all-reduce max), local masks, local picks.
    const std::vector<int64_t> bounds{0, 123, 650, V};
    std::vector<std::vector<float>> shards;
    std::vector<float> candidates;
    float global_max = kNegInf;
    for (size_t r = 0; r + 1 < bounds.size(); ++r) {
      std::vector<float> shard(logits.begin() + bounds[r], logits.begin() + bounds[r + 1]);
      const int64_t n = static_cast<int64_t>(shard.size());
      ApplyPenalties(shard.data(), n, bounds[r], p, prompt, output);
      for (float& l : shard) l /= p.temperature;
      for (const TokenScore& t : TopN(shard.data(), n, bounds[r], p.top_k)) {
        candidates.push_back(t.score);
      }
      global_max = std::max(global_max, *std::max_element(shard.begin(), shard.end()));
      shards.push_back(std::move(shard));
    }
    const double k_threshold = TopKThreshold(candidates, p.top_k);
    const double p_threshold = MinPThreshold(global_max, p.min_p);
    TokenScore pick;
    for (size_t r = 0; r < shards.size(); ++r) {
      const int64_t n = static_cast<int64_t>(shards[r].size());
      MaskBelow(shards[r].data(), n, k_threshold);
      MaskBelow(shards[r].data(), n, p_threshold);
      pick = CombinePicks(pick, GumbelMax(shards[r].data(), n, bounds[r], p.seed, p.position));
      // The masked shard equals the same slice of the full row's processed logits.
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(shards[r][i], full[bounds[r] + i]) << r << " " << i;
    }
    EXPECT_EQ(pick.token, want) << "trial " << trial;
  }
}

TEST(SamplingTest, TopKKeepsTiesAtTheKthValue) {
  std::vector<float> l{1.0f, 4.0f, 3.0f, 3.0f, 0.0f};
  ApplyTopKTopPMinP(l.data(), 5, 2, 1.0f, 0.0f);
  EXPECT_EQ(l, (std::vector<float>{kNegInf, 4.0f, 3.0f, 3.0f, kNegInf}));
  std::vector<float> m{1.0f, 2.0f};
  ApplyTopKTopPMinP(m.data(), 2, 5, 1.0f, 0.0f);  // k > V: no-op
  EXPECT_EQ(m, (std::vector<float>{1.0f, 2.0f}));
}

TEST(SamplingTest, TopPKeepsTheSmallestSetReachingP) {
  // probabilities 0.5, 0.25, 0.15, 0.1
  const std::vector<float> base{std::log(0.15f), std::log(0.5f), std::log(0.1f), std::log(0.25f)};
  std::vector<float> l = base;
  ApplyTopKTopPMinP(l.data(), 4, 0, 0.7f, 0.0f);  // 0.5 + 0.25 >= 0.7
  EXPECT_EQ(l[0], kNegInf);
  EXPECT_EQ(l[2], kNegInf);
  EXPECT_EQ(l[1], base[1]);
  EXPECT_EQ(l[3], base[3]);
  l = base;
  ApplyTopKTopPMinP(l.data(), 4, 0, 0.1f, 0.0f);  // always at least one token
  EXPECT_EQ(l, (std::vector<float>{kNegInf, base[1], kNegInf, kNegInf}));
  l = base;
  ApplyTopKTopPMinP(l.data(), 4, 3, 0.85f, 0.0f);  // over top-3 renormalised: .5/.9+.25/.9 < .85
  EXPECT_EQ(l[2], kNegInf);
  EXPECT_NE(l[0], kNegInf);
}

TEST(SamplingTest, MinPDropsTokensBelowFractionOfTheMax) {
  const std::vector<float> base{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  std::vector<float> l = base;
  ApplyTopKTopPMinP(l.data(), 4, 0, 1.0f, 0.2f);  // threshold 0.1
  EXPECT_EQ(l, (std::vector<float>{base[0], base[1], base[2], kNegInf}));
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.7f;  // only token 0 survives: every draw picks it
  for (int pos = 0; pos < 50; ++pos) {
    p.position = pos;
    EXPECT_EQ(SampleCopy(base, p), 0);
  }
}

TEST(SamplingTest, PenaltiesFollowRepetitionThenPresenceAndFrequency) {
  std::vector<float> l{2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 0.25f;
  p.frequency_penalty = 0.5f;
  // prompt: 0, 1; output: 2 twice, 1 once. Token 3, 4 untouched.
  const std::vector<int32_t> prompt{0, 1, 0};
  const std::vector<int32_t> output{2, 1, 2};
  ApplyPenalties(l.data(), 5, 0, p, prompt, output);
  EXPECT_FLOAT_EQ(l[0], 1.0f);                     // 2 / 2
  EXPECT_FLOAT_EQ(l[1], -4.0f - 0.25f - 0.5f);     // -2 * 2, presence, frequency x1
  EXPECT_FLOAT_EQ(l[2], 0.5f - 0.25f - 2 * 0.5f);  // 1 / 2, presence, frequency x2
  EXPECT_FLOAT_EQ(l[3], 0.5f);
  EXPECT_FLOAT_EQ(l[4], 3.0f);
  // A shard [2, 5) sees only its own ids, with the same results.
  std::vector<float> shard{1.0f, 0.5f, 3.0f};
  ApplyPenalties(shard.data(), 3, 2, p, prompt, output);
  EXPECT_FLOAT_EQ(shard[0], l[2]);
  EXPECT_FLOAT_EQ(shard[1], l[3]);
  // Greedy applies penalties: token 4 wins, then with a big repetition penalty on it token 0 does.
  SamplingParams g;
  g.repetition_penalty = 10.0f;
  std::vector<float> row{2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  const std::vector<int32_t> seen{4};
  EXPECT_EQ(Sample(row.data(), 5, g, {}, seen), 0);
}

TEST(SamplingTest, LogSoftmaxAndTopN) {
  const std::vector<float> l{1.0f, 3.0f, 3.0f, -1.0f, 0.0f};
  std::vector<float> lp(5);
  LogSoftmax(l.data(), lp.data(), 5);
  double sum = 0;
  for (float v : lp) sum += std::exp(double(v));
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(lp[1] - lp[0], 2.0f, 1e-6f);
  const std::vector<TokenScore> top = TopN(lp.data(), 5, 100, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].token, 101);
  EXPECT_EQ(top[1].token, 102);
  EXPECT_EQ(top[2].token, 100);
  EXPECT_EQ(top[0].score, lp[1]);
}

}  // namespace
}  // namespace tandem::kernels::cpu
