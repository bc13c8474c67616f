// Prefix-cache snapshots in the model (StepPlan restore_snapshot / save_snapshot): a sequence that
// restores a snapshot saved at position P and feeds the rest computes exactly what a sequence that
// prefilled the whole prompt in the same chunks computes; restores happen before a step's forward
// and saves after it; snapshot ids, positions and double saves are validated. Random tiny f32
// models and random prompts (fresh seeds).
#include <algorithm>
#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "tests/model/model_test_util.h"

namespace tandem::model {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

constexpr double kTolerance = 1e-4;
constexpr int64_t kBlock = 4;

class SnapshotTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    seed_ = testing::FreshSeed();
    rng_.seed(seed_);
    model_dir_ = testing::WriteTiny(dir_, GetParam(), seed_ % 1000, core::DType::kF32);
  }
  std::unique_ptr<NemotronHModel> Load() {
    auto m = NemotronHModel::Load(model_dir_, {});
    EXPECT_TRUE(m.ok()) << m.status();
    return std::move(*m);
  }
  std::vector<int32_t> Tokens(int64_t n) { return testing::RandomTokens(rng_, n, 4096); }

  TempDir dir_;
  std::string model_dir_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

std::vector<int32_t> Slice(const std::vector<int32_t>& v, int64_t begin, int64_t end) {
  return std::vector<int32_t>(v.begin() + begin, v.begin() + end);
}

// Blocks [first, first + n).
std::vector<int32_t> Blocks(int32_t first, int32_t n) {
  std::vector<int32_t> b(n);
  for (int32_t i = 0; i < n; ++i) b[i] = first + i;
  return b;
}

template <typename T>
std::vector<T> Concat(std::vector<T> a, const std::vector<T>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

SequenceStep Seq(int32_t slot, std::vector<int32_t> table, int64_t start,
                 std::vector<int32_t> tokens, int32_t restore = -1, int32_t save = -1) {
  SequenceStep s;
  s.slot = slot;
  s.block_table = std::move(table);
  s.start_pos = start;
  s.token_ids = std::move(tokens);
  s.logits = LogitsRequest::kAll;
  s.restore_snapshot = restore;
  s.save_snapshot = save;
  return s;
}

// Runs one step; returns each sequence's logits rows.
std::vector<std::vector<float>> RunStep(NemotronHModel& model, std::vector<SequenceStep> seqs) {
  StepPlan plan;
  plan.sequences = std::move(seqs);
  auto out = model.Step(plan);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return {};
  const int64_t vocab = out->logits.dim(1);
  std::vector<std::vector<float>> rows;
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const float* begin = out->logits.data<float>() + out->row_begin[i] * vocab;
    rows.emplace_back(begin, begin + out->row_count[i] * vocab);
  }
  return rows;
}

// Logits rows [begin, end) of a [T, vocab] tensor.
std::vector<float> Rows(const core::Tensor& t, int64_t begin, int64_t end) {
  const int64_t vocab = t.dim(1);
  return std::vector<float>(t.data<float>() + begin * vocab, t.data<float>() + end * vocab);
}

double Error(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  if (got.size() != want.size()) return 1e30;
  return testing::RelMaxError(got.data(), want.data(), static_cast<int64_t>(want.size()));
}

bool Bitwise(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_P(SnapshotTest, RestoreEqualsPrefillInTheSameChunks) {
  auto model = Load();
  const int64_t len = 12 + static_cast<int64_t>(rng_() % 29);
  const int64_t p = kBlock * (1 + static_cast<int64_t>(rng_() % ((len - 1) / kBlock)));
  const auto prompt = Tokens(len);
  const auto decode = Tokens(4);
  std::fprintf(stderr, "prompt %ld tokens, snapshot at %ld\n", static_cast<long>(len),
               static_cast<long>(p));
  auto one_shot = PromptLogits(*model, Concat(prompt, decode));
  ASSERT_TRUE(one_shot.ok()) << one_shot.status();

  model->AllocateState({4, 64, kBlock, 3});
  const int32_t k = static_cast<int32_t>(rng_() % 3);
  const int32_t p_blocks = static_cast<int32_t>(p / kBlock);
  // The source prefills [0, P) in slot 0 (blocks 0..) and saves snapshot k.
  auto source = RunStep(*model, {Seq(0, Blocks(0, p_blocks), 0, Slice(prompt, 0, p), -1, k)});
  ASSERT_EQ(source.size(), 1u);
  EXPECT_EQ(model->snapshot_position(k), p);
  EXPECT_EQ(model->snapshot_position((k + 1) % 3), -1);
  // The reference prefills [0, P) then [P, L) in slot 2 (blocks 32..).
  auto ref_head = RunStep(*model, {Seq(2, Blocks(32, 16), 0, Slice(prompt, 0, p))});
  auto ref = RunStep(*model, {Seq(2, Blocks(32, 16), p, Slice(prompt, p, len))});
  // The cached sequence: slot 1 restores k at P and shares the source's KV blocks of [0, P).
  const auto cached_table = Concat(Blocks(0, p_blocks), Blocks(16, 16 - p_blocks));
  auto cached = RunStep(*model, {Seq(1, cached_table, p, Slice(prompt, p, len), k)});
  ASSERT_EQ(ref.size(), 1u);
  ASSERT_EQ(cached.size(), 1u);
  EXPECT_TRUE(Bitwise(cached[0], ref[0])) << "error " << Error(cached[0], ref[0]);
  EXPECT_LE(Error(cached[0], Rows(*one_shot, p, len)), kTolerance);
  EXPECT_LE(Error(Concat(ref_head[0], ref[0]), Rows(*one_shot, 0, len)), kTolerance);
  // Decoding continues identically.
  for (int64_t j = 0; j < static_cast<int64_t>(decode.size()); ++j) {
    const int64_t pos = len + j;
    auto r = RunStep(*model, {Seq(2, Blocks(32, 16), pos, {decode[j]})});
    auto c = RunStep(*model, {Seq(1, cached_table, pos, {decode[j]})});
    ASSERT_EQ(r.size(), 1u);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_TRUE(Bitwise(c[0], r[0])) << "decode " << j << ": error " << Error(c[0], r[0]);
    EXPECT_LE(Error(c[0], Rows(*one_shot, pos, pos + 1)), kTolerance) << "decode " << j;
  }
  // The snapshot is still there: the restored slot's steps did not touch it.
  EXPECT_EQ(model->snapshot_position(k), p);
}

// Restores and saves of one snapshot in one step (the restore reads the old contents), a
// snapshot restored into two slots, and a snapshot overwritten by a later save.
TEST_P(SnapshotTest, RestoresBeforeSavesInAStepAndOverwrites) {
  auto model = Load();
  const auto a = Tokens(20);
  auto ref_model = Load();
  auto ref = PromptLogits(*ref_model, a);
  ASSERT_TRUE(ref.ok()) << ref.status();
  const auto want = [&](int64_t begin, int64_t end) { return Rows(*ref, begin, end); };

  model->AllocateState({5, 64, kBlock, 2});
  // Slot 0 (blocks 0..4) prefills [0, 8) and saves snapshot 0.
  ASSERT_EQ(RunStep(*model, {Seq(0, Blocks(0, 5), 0, Slice(a, 0, 8), -1, 0)}).size(), 1u);
  // One step: slot 1 restores snapshot 0 at 8 while slot 0 continues to 12 and saves into it.
  auto s2 = RunStep(*model, {Seq(1, Concat(Blocks(0, 2), Blocks(10, 3)), 8, Slice(a, 8, 20), 0),
                             Seq(0, Blocks(0, 5), 8, Slice(a, 8, 12), -1, 0)});
  ASSERT_EQ(s2.size(), 2u);
  EXPECT_LE(Error(s2[0], want(8, 20)), kTolerance) << "the restore saw the new contents";
  EXPECT_LE(Error(s2[1], want(8, 12)), kTolerance);
  EXPECT_EQ(model->snapshot_position(0), 12);
  // Restoring at the old position is now refused.
  StepPlan stale;
  stale.sequences.push_back(Seq(4, Concat(Blocks(0, 2), Blocks(40, 3)), 8, Slice(a, 8, 20), 0));
  EXPECT_THAT(model->ValidatePlan(stale).message(),
              HasSubstr("restore_snapshot 0 was saved at position 12, not at start_pos 8"));
  // One step: slots 2 and 3 both restore snapshot 0 at 12; slot 2 also saves it again at 16.
  auto s3 =
      RunStep(*model, {Seq(2, Concat(Blocks(0, 3), Blocks(20, 1)), 12, Slice(a, 12, 16), 0, 0),
                       Seq(3, Concat(Blocks(0, 3), Blocks(30, 2)), 12, Slice(a, 12, 20), 0)});
  ASSERT_EQ(s3.size(), 2u);
  EXPECT_LE(Error(s3[0], want(12, 16)), kTolerance);
  EXPECT_LE(Error(s3[1], want(12, 20)), kTolerance);
  EXPECT_EQ(model->snapshot_position(0), 16);
  // Slot 4 restores the overwritten snapshot at 16 (KV of [12, 16) from slot 2's block 20).
  auto s4 = RunStep(*model, {Seq(4, {0, 1, 2, 20, 40}, 16, Slice(a, 16, 20), 0)});
  ASSERT_EQ(s4.size(), 1u);
  EXPECT_LE(Error(s4[0], want(16, 20)), kTolerance);
}

TEST_P(SnapshotTest, SnapshotBytesAreAccountedApartFromTheSlots) {
  auto model = Load();
  model->AllocateState({4, 16, kBlock, 0});
  const uint64_t slots_only = model->state_bytes();
  EXPECT_EQ(model->snapshot_bytes(), 0u);
  model->AllocateState({4, 16, kBlock, 3});
  EXPECT_EQ(model->state_bytes(), slots_only);
  EXPECT_GT(model->snapshot_entry_bytes(), 0u);
  EXPECT_EQ(model->snapshot_bytes(), 3 * model->snapshot_entry_bytes());
  // An entry is one slot's Mamba state: at most the slot pools' bytes per slot.
  EXPECT_LE(4 * model->snapshot_entry_bytes(), slots_only);
}

TEST_P(SnapshotTest, RejectsBadSnapshotPlans) {
  auto model = Load();
  const auto a = Tokens(12);
  model->AllocateState({4, 32, kBlock, 2});
  ASSERT_EQ(RunStep(*model, {Seq(0, Blocks(0, 3), 0, Slice(a, 0, 4), -1, 0)}).size(), 1u);
  // Sequence 0 is always fine; sequence 1 carries the error.
  const auto plan = [&](SequenceStep bad) {
    StepPlan p;
    p.sequences.push_back(Seq(2, Blocks(8, 3), 0, Slice(a, 0, 4)));
    p.sequences.push_back(std::move(bad));
    return p;
  };
  const std::vector<int32_t> table = Concat(Blocks(0, 1), Blocks(16, 2));
  const struct {
    SequenceStep seq;
    std::string message;
  } cases[] = {
      {Seq(1, table, 4, Slice(a, 4, 12), 2),
       "sequence 1 (slot 1): restore_snapshot 2 is outside [0, 2)"},
      {Seq(1, table, 4, Slice(a, 4, 12), -3),
       "sequence 1 (slot 1): restore_snapshot -3 is outside"},
      {Seq(1, table, 0, Slice(a, 0, 8), -1, 5),
       "sequence 1 (slot 1): save_snapshot 5 is outside [0, 2)"},
      {Seq(1, table, 4, Slice(a, 4, 12), 1),
       "sequence 1 (slot 1): restore_snapshot 1 was never saved"},
      {Seq(1, table, 0, Slice(a, 0, 8), 0),
       "sequence 1 (slot 1): restore_snapshot 0 needs start_pos > 0 (got 0)"},
      {Seq(1, table, 8, Slice(a, 8, 12), 0),
       "sequence 1 (slot 1): restore_snapshot 0 was saved at position 4, not at start_pos 8"},
  };
  for (const auto& c : cases) {
    const absl::Status s = model->Step(plan(c.seq)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(s.message(), HasSubstr(c.message));
  }
  StepPlan twice;
  twice.sequences.push_back(Seq(2, Blocks(8, 3), 0, Slice(a, 0, 4), -1, 1));
  twice.sequences.push_back(Seq(3, Blocks(24, 3), 0, Slice(a, 0, 8), -1, 1));
  const absl::Status s = model->Step(twice).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      s.message(),
      HasSubstr("sequence 1 (slot 3): save_snapshot 1 is saved by two sequences in one step"));
  // Nothing was recorded by the rejected steps.
  EXPECT_EQ(model->snapshot_position(0), 4);
  EXPECT_EQ(model->snapshot_position(1), -1);
  // Without a snapshot pool every id is out of range.
  model->AllocateState({4, 32, kBlock, 0});
  EXPECT_THAT(model->ValidatePlan(plan(Seq(1, table, 0, Slice(a, 0, 4), -1, 0))).message(),
              HasSubstr("save_snapshot 0 is outside [0, 0)"));
}

INSTANTIATE_TEST_SUITE_P(Presets, SnapshotTest, ::testing::Values("tiny", "tiny-7"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace tandem::model
