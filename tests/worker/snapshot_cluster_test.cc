// Prefix-cache snapshots on a replica of real worker processes (tp=2, pp=2): each rank grants the
// snapshot entries its byte budget holds and reports them in Info; a sequence that restores a
// snapshot computes bit for bit what a sequence that prefilled the same chunks computes, and
// samples with the same token history (a repetition penalty that rewards the cached prefix's
// tokens picks the same tokens); bad snapshot plans are INVALID_ARGUMENT and the replica goes on.
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/sampling.h"
#include "sharding/shard_plan.h"
#include "tests/worker/worker_test_util.h"

namespace tandem::worker {
namespace {

namespace pb = ::tandem::worker::v1;

constexpr int64_t kBlock = 4;
constexpr int64_t kLen = 24;       // prompt tokens
constexpr int64_t kCached = 16;    // the snapshot's position (block aligned)
constexpr float kPenalty = 0.01f;  // < 1: rewards tokens already seen (prompt and output)

// One rank's Mamba state bytes per slot: conv [conv_dim / tp, K - 1] + SSM [heads / tp, head_dim,
// state], f32, over the Mamba layers of [begin, end).
int64_t EntryBytes(const core::ModelConfig& c, int tp, int64_t begin, int64_t end) {
  const int64_t conv_dim = (c.d_inner() + 2 * c.n_groups * c.ssm_state_size) / tp;
  const int64_t per_layer =
      conv_dim * (c.conv_kernel - 1) + c.mamba_num_heads / tp * c.mamba_head_dim * c.ssm_state_size;
  int64_t n = 0;
  for (int64_t i = begin; i < end; ++i) {
    if (c.layers[i] == core::LayerKind::kMamba) n += per_layer * 4;
  }
  return n;
}

pb::SequenceStep Seq(int32_t slot, std::vector<int32_t> table, int64_t begin, int64_t end,
                     const std::vector<int32_t>& prompt, pb::LogitsMode logits) {
  pb::SequenceStep s;
  s.set_slot(slot);
  for (int32_t b : table) s.add_block_table(b);
  s.set_start_pos(begin);
  for (int64_t i = begin; i < end; ++i) s.add_token_ids(prompt[i]);
  s.set_logits(logits);
  s.set_prompt_len(kLen);
  s.mutable_sampling()->set_temperature(0.0f);
  s.mutable_sampling()->set_repetition_penalty(kPenalty);
  s.set_request_tag(static_cast<uint64_t>(slot) + 100);
  return s;
}

std::vector<int32_t> Blocks(int32_t first, int32_t n) {
  std::vector<int32_t> b(n);
  for (int32_t i = 0; i < n; ++i) b[i] = first + i;
  return b;
}

// The greedy pick with the repetition penalty over `history`, from the last row of `logits`.
int32_t Pick(const core::Tensor& logits, const std::vector<int32_t>& history) {
  const int64_t vocab = logits.dim(1);
  std::vector<float> row(logits.data<float>() + (logits.dim(0) - 1) * vocab,
                         logits.data<float>() + logits.dim(0) * vocab);
  kernels::cpu::SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = kPenalty;
  return kernels::cpu::Sample(row.data(), vocab, p, history, {});
}

TEST(SnapshotClusterTest, RestoredSequencesMatchTheirPrefilledTwinOnTwoByTwo) {
  const std::string dir = TinyModelDir("tiny", core::DType::kF32);
  auto config = core::TinyPreset("tiny");
  ASSERT_TRUE(config.ok());
  auto model = model::NemotronHModel::Load(dir, model::ModelOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  const int vocab = static_cast<int>((*model)->config().vocab_size);
  // A prompt whose first token after it depends on the cached prefix being in the penalty's
  // history: without the restored history the pick would differ.
  std::vector<int32_t> prompt;
  core::Tensor want;
  int32_t want_token = -1;
  for (uint32_t seed = 1; seed < 60 && want_token < 0; ++seed) {
    prompt = RandomPrompt(kLen, vocab, seed);
    auto l = model::PromptLogits(**model, prompt);
    ASSERT_TRUE(l.ok()) << l.status();
    const int32_t full = Pick(*l, prompt);
    const int32_t tail = Pick(*l, std::vector<int32_t>(prompt.begin() + kCached, prompt.end()));
    if (full != tail) {
      want = *l;
      want_token = full;
    }
  }
  ASSERT_GE(want_token, 0) << "no prompt whose pick depends on the cached prefix's history";

  const int tp = 2, pp = 2;
  auto plan = sharding::ShardPlan::Create(*config, {tp, pp});
  ASSERT_TRUE(plan.ok());
  const int64_t entry0 =
      EntryBytes(*config, tp, plan->rank(0).layers.begin, plan->rank(0).layers.end);
  ASSERT_GT(entry0, 0);
  LocalClusterOptions o = ClusterOptions(dir, tp, pp);
  o.block_size = kBlock;
  o.num_snapshots = 8;
  o.snapshot_pool_bytes = 3 * entry0 + entry0 / 2;  // stage 0: 3 entries
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  int64_t granted = o.num_snapshots;
  for (int r = 0; r < tp * pp; ++r) {
    const pb::InfoResponse& info = (*cluster)->infos()[r];
    const int64_t entry =
        EntryBytes(*config, tp, info.layout().layer_begin(), info.layout().layer_end());
    const int64_t want_n =
        entry == 0 ? o.num_snapshots : std::min(o.num_snapshots, o.snapshot_pool_bytes / entry);
    EXPECT_EQ(info.snapshot_entry_bytes(), entry) << "rank " << r;
    EXPECT_EQ(info.capacity().num_snapshots(), want_n) << "rank " << r;
    EXPECT_EQ(info.snapshot_bytes(), want_n * entry) << "rank " << r;
    granted = std::min(granted, info.capacity().num_snapshots());
  }
  EXPECT_EQ((*cluster)->infos()[0].capacity().num_snapshots(), 3);
  ASSERT_GE(granted, 2);

  const auto step = [&](std::vector<pb::SequenceStep> seqs) -> absl::StatusOr<pb::StepResponse> {
    pb::StepRequest req;
    for (auto& s : seqs) *req.add_sequences() = std::move(s);
    return (*cluster)->Step(req);
  };
  const int32_t cached_blocks = kCached / kBlock;
  // The source (slot 0, blocks 0..) prefills [0, 16) and saves snapshot 1.
  pb::SequenceStep source = Seq(0, Blocks(0, cached_blocks), 0, kCached, prompt, pb::LOGITS_NONE);
  source.set_save_snapshot(1);
  ASSERT_TRUE(step({source}).ok());
  // The twin (slot 2, blocks 32..) prefills [0, 16) and [16, 24) itself.
  ASSERT_TRUE(step({Seq(2, Blocks(32, 16), 0, kCached, prompt, pb::LOGITS_NONE)}).ok());
  auto twin = step({Seq(2, Blocks(32, 16), kCached, kLen, prompt, pb::LOGITS_ALL)});
  ASSERT_TRUE(twin.ok()) << twin.status();
  // The cached sequence (slot 1) restores snapshot 1 at 16, sharing the source's KV blocks.
  std::vector<int32_t> table = Blocks(0, cached_blocks);
  for (int32_t b : Blocks(16, 16 - cached_blocks)) table.push_back(b);
  pb::SequenceStep cached = Seq(1, table, kCached, kLen, prompt, pb::LOGITS_ALL);
  cached.set_restore_snapshot(1);
  auto got = step({cached});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->results_size(), 1);
  const pb::SequenceResult& c = got->results(0);
  const pb::SequenceResult& t = twin->results(0);
  EXPECT_EQ(c.error_code(), 0) << c.error();
  EXPECT_TRUE(c.all_logits() == t.all_logits()) << "restored logits differ from the twin's";
  const int64_t n = (kLen - kCached) * vocab;
  ASSERT_EQ(c.all_logits().size(), static_cast<size_t>(n) * sizeof(float));
  std::vector<float> g(n);
  std::memcpy(g.data(), c.all_logits().data(), c.all_logits().size());
  EXPECT_LE(RelMaxErr(want.data<float>() + kCached * vocab, g.data(), n), 1e-4);
  EXPECT_EQ(t.token_id(), want_token);
  EXPECT_EQ(c.token_id(), want_token) << "the restored sequence lost the cached prefix's history";
  // Greedy decoding with the penalty (vocabulary-sharded sampling at tp=2) stays identical.
  int32_t next_twin = t.token_id(), next_cached = c.token_id();
  for (int64_t pos = kLen; pos < kLen + 5; ++pos) {
    std::vector<int32_t> one(pos + 1, 0);
    one[pos] = next_twin;
    auto a = step({Seq(2, Blocks(32, 16), pos, pos + 1, one, pb::LOGITS_LAST)});
    one[pos] = next_cached;
    auto b = step({Seq(1, table, pos, pos + 1, one, pb::LOGITS_LAST)});
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << " " << b.status();
    EXPECT_EQ(b->results(0).token_id(), a->results(0).token_id()) << "position " << pos;
    EXPECT_EQ(b->results(0).logprob(), a->results(0).logprob()) << "position " << pos;
    next_twin = a->results(0).token_id();
    next_cached = b->results(0).token_id();
  }

  // Bad snapshot plans fail on every rank before any collective; the replica goes on.
  pb::SequenceStep never = Seq(3, Blocks(48, 8), kCached, kLen, prompt, pb::LOGITS_LAST);
  never.set_restore_snapshot(0);
  auto rejected = step({never});
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument) << rejected.status();
  EXPECT_THAT(std::string(rejected.status().message()),
              ::testing::HasSubstr("sequence 0 (slot 3): restore_snapshot 0 was never saved"));
  pb::SequenceStep minus = never;
  minus.set_restore_snapshot(-1);
  rejected = step({minus});
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument) << rejected.status();
  EXPECT_THAT(std::string(rejected.status().message()),
              ::testing::HasSubstr("restore_snapshot -1 is outside [0, "));
  pb::SequenceStep too_big = Seq(3, Blocks(48, 8), 0, 4, prompt, pb::LOGITS_NONE);
  // Outside every rank's pool (ranks may grant different counts; the coordinator uses the least).
  too_big.set_save_snapshot(static_cast<int32_t>(o.num_snapshots));
  rejected = step({too_big});
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument) << rejected.status();
  EXPECT_THAT(std::string(rejected.status().message()),
              ::testing::HasSubstr(absl::StrCat("save_snapshot ", o.num_snapshots, " is outside")));
  // The snapshot still restores (into another slot) after the rejected plans.
  pb::SequenceStep again = Seq(3, table, kCached, kLen, prompt, pb::LOGITS_ALL);
  for (int b = cached_blocks; b < 16; ++b) again.set_block_table(b, 48 + b - cached_blocks);
  again.set_restore_snapshot(1);
  auto second = step({again});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->results(0).all_logits() == t.all_logits());
  EXPECT_EQ(second->results(0).token_id(), want_token);
}

}  // namespace
}  // namespace tandem::worker
