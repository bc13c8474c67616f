// Structural identities of the forward pass on random tiny models and random prompts: chunked
// prefill == one-shot, prefill + decode == longer prefill, chunked SSD == sequential scan,
// batch composition does not change a sequence's logits, a reused slot starts clean.
#include <algorithm>
#include <numeric>

#include "gtest/gtest.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "tests/model/model_test_util.h"

namespace tandem::model {
namespace {

using testing::TempDir;

// f32 everywhere; the same math in another grouping (GEMM row blocking, chunked scan) differs by
// fp32 rounding only.
constexpr double kTolerance = 1e-4;

class IdentityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    seed_ = testing::FreshSeed();
    rng_.seed(seed_);
    model_dir_ = testing::WriteTiny(dir_, GetParam(), seed_ % 1000, core::DType::kF32);
  }
  std::unique_ptr<NemotronHModel> Load(ModelOptions options = {}) {
    auto m = NemotronHModel::Load(model_dir_, options);
    EXPECT_TRUE(m.ok()) << m.status();
    return std::move(*m);
  }
  int64_t Vocab() const { return 4096; }

  TempDir dir_;
  std::string model_dir_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

// Feeds each sequence's tokens in random chunks, several sequences per step, with shuffled slots
// and block ids; returns every position's logits per sequence.
std::vector<std::vector<float>> RunInterleaved(NemotronHModel& model,
                                               const std::vector<std::vector<int32_t>>& seqs,
                                               std::mt19937_64& rng, int64_t block_size) {
  const int64_t vocab = model.config().vocab_size;
  const int64_t n = static_cast<int64_t>(seqs.size());
  int64_t total_blocks = 0;
  for (const auto& s : seqs) total_blocks += (s.size() + block_size - 1) / block_size;
  StateCapacity capacity{n + 3, total_blocks + 5, block_size};
  model.AllocateState(capacity);
  std::vector<int32_t> slots(capacity.num_slots), blocks(capacity.num_blocks);
  std::iota(slots.begin(), slots.end(), 0);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<std::vector<int32_t>> tables(n);
  size_t next_block = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (size_t b = 0; b < (seqs[i].size() + block_size - 1) / block_size; ++b) {
      tables[i].push_back(blocks[next_block++]);
    }
  }
  std::vector<int64_t> done(n, 0);
  std::vector<std::vector<float>> logits(n);
  const auto all_done = [&] {
    for (int64_t i = 0; i < n; ++i) {
      if (done[i] < static_cast<int64_t>(seqs[i].size())) return false;
    }
    return true;
  };
  while (!all_done()) {
    StepPlan plan;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t left = static_cast<int64_t>(seqs[i].size()) - done[i];
      if (left == 0 || rng() % 4 == 0) continue;  // sometimes sit a step out
      // Decodes (1 token) half of the time, else a random prefill chunk.
      const int64_t take = rng() % 2 ? 1 : 1 + static_cast<int64_t>(rng() % left);
      SequenceStep s;
      s.slot = slots[i];
      s.block_table = tables[i];
      s.start_pos = done[i];
      s.token_ids.assign(seqs[i].begin() + done[i], seqs[i].begin() + done[i] + take);
      s.logits = LogitsRequest::kAll;
      plan.sequences.push_back(std::move(s));
    }
    if (plan.sequences.empty()) continue;  // everyone sat out: draw again
    std::shuffle(plan.sequences.begin(), plan.sequences.end(), rng);
    auto out = model.Step(plan);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    for (size_t k = 0; k < plan.sequences.size(); ++k) {
      const auto& s = plan.sequences[k];
      const int64_t i = std::find(slots.begin(), slots.end(), s.slot) - slots.begin();
      const float* rows = out->logits.data<float>() + out->row_begin[k] * vocab;
      logits[i].insert(logits[i].end(), rows, rows + out->row_count[k] * vocab);
      done[i] += static_cast<int64_t>(s.token_ids.size());
    }
  }
  return logits;
}

TEST_P(IdentityTest, ChunkedPrefillAndDecodeEqualOneShot) {
  auto model = Load();
  const int64_t len = 20 + static_cast<int64_t>(rng_() % 40);
  const auto tokens = testing::RandomTokens(rng_, len, Vocab());
  auto one_shot = PromptLogits(*model, tokens);
  ASSERT_TRUE(one_shot.ok()) << one_shot.status();
  // The same sequence alone, fed in random chunks and single decode tokens.
  auto pieces = RunInterleaved(*model, {tokens}, rng_, 4);
  ASSERT_EQ(pieces.size(), 1u);
  ASSERT_EQ(static_cast<int64_t>(pieces[0].size()), one_shot->numel());
  EXPECT_LE(testing::RelMaxError(pieces[0].data(), one_shot->data<float>(), one_shot->numel()),
            kTolerance);
}

TEST_P(IdentityTest, PrefillThenDecodeEqualsLongerPrefill) {
  auto model = Load();
  const int64_t n = 5 + static_cast<int64_t>(rng_() % 20), k = 8;
  const auto tokens = testing::RandomTokens(rng_, n + k, Vocab());
  auto full = PromptLogits(*model, tokens);
  ASSERT_TRUE(full.ok());
  model->AllocateState({1, 16, 16});
  StepPlan plan;
  plan.sequences.push_back(
      {0, {0, 1, 2, 3}, 0, {tokens.begin(), tokens.begin() + n}, LogitsRequest::kLast});
  for (int64_t step = 0; step <= k; ++step) {
    auto out = model->Step(plan);
    ASSERT_TRUE(out.ok()) << out.status();
    const int64_t pos = n + step - 1;
    EXPECT_LE(testing::RelMaxError(out->logits.data<float>(), full->data<float>() + pos * Vocab(),
                                   Vocab()),
              kTolerance)
        << "position " << pos;
    if (step == k) break;
    plan.sequences[0].start_pos = n + step;
    plan.sequences[0].token_ids = {tokens[n + step]};
  }
}

TEST_P(IdentityTest, ChunkedSsdScanEqualsSequentialScan) {
  auto sequential = Load();
  const auto tokens = testing::RandomTokens(rng_, 37, Vocab());
  auto want = PromptLogits(*sequential, tokens);
  ASSERT_TRUE(want.ok());
  for (int64_t chunk : {1, 3, 5, 16, 64}) {
    for (bool reference : {false, true}) {
      ModelOptions options;
      options.ssd_chunk_size = chunk;
      options.reference_kernels = reference;
      auto chunked = Load(options);
      auto got = PromptLogits(*chunked, tokens);
      ASSERT_TRUE(got.ok());
      EXPECT_LE(testing::RelMaxError(got->data<float>(), want->data<float>(), want->numel()),
                kTolerance)
          << "chunk " << chunk << " reference " << reference;
    }
  }
}

TEST_P(IdentityTest, ReferenceKernelsAgreeWithFastPaths) {
  auto fast = Load();
  ModelOptions options;
  options.reference_kernels = true;
  auto reference = Load(options);
  const auto tokens = testing::RandomTokens(rng_, 29, Vocab());
  auto a = PromptLogits(*fast, tokens);
  auto b = PromptLogits(*reference, tokens);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LE(testing::RelMaxError(a->data<float>(), b->data<float>(), b->numel()), kTolerance);
}

TEST_P(IdentityTest, MixedBatchGivesEachSequenceItsAloneLogits) {
  auto model = Load();
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 5; ++i) {
    seqs.push_back(testing::RandomTokens(rng_, 1 + static_cast<int64_t>(rng_() % 30), Vocab()));
  }
  auto together = RunInterleaved(*model, seqs, rng_, 4);
  ASSERT_EQ(together.size(), seqs.size());
  auto alone_model = Load();
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto alone = PromptLogits(*alone_model, seqs[i]);
    ASSERT_TRUE(alone.ok());
    ASSERT_EQ(static_cast<int64_t>(together[i].size()), alone->numel()) << "sequence " << i;
    EXPECT_LE(testing::RelMaxError(together[i].data(), alone->data<float>(), alone->numel()),
              kTolerance)
        << "sequence " << i;
  }
}

TEST_P(IdentityTest, ReusedSlotStartsClean) {
  auto model = Load();
  const auto first = testing::RandomTokens(rng_, 23, Vocab());
  const auto second = testing::RandomTokens(rng_, 11, Vocab());
  model->AllocateState({3, 8, 8});
  // The first sequence leaves state in slot 2 and blocks 0..2.
  auto out = model->Step({{{2, {0, 1, 2}, 0, first, LogitsRequest::kNone}}});
  ASSERT_TRUE(out.ok()) << out.status();
  // A new sequence reuses slot 2 and block 1 from position 0.
  auto reused = model->Step({{{2, {1, 5}, 0, second, LogitsRequest::kAll}}});
  ASSERT_TRUE(reused.ok()) << reused.status();
  auto fresh_model = Load();
  auto fresh = PromptLogits(*fresh_model, second);
  ASSERT_TRUE(fresh.ok());
  EXPECT_LE(
      testing::RelMaxError(reused->logits.data<float>(), fresh->data<float>(), fresh->numel()),
      kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Presets, IdentityTest, ::testing::Values("tiny", "tiny-7"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace tandem::model
