// ShardPlan: every tensor's per-rank slices reassemble the full tensor, the slices follow the
// heads/groups a rank owns (per segment, not one contiguous range), the 8B numbers of the model
// spec §4.1, state slices, invalid layouts.
#include "sharding/shard_plan.h"

#include <algorithm>
#include <array>
#include <map>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/tiny_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sharding/test_configs.h"

namespace tandem::sharding {
namespace {

using core::ModelConfig;

// Gathers rank `s`'s slice of a tensor whose element e holds value e (a [rows, cols] view:
// cols = product of the dims after 0, or the [d0, d1, rest] view for kColumns).
std::vector<int64_t> Gather(const TensorSlice& s) {
  const core::Shape& f = s.full_shape;
  const int64_t rows = f[0];
  const int64_t inner = core::NumElements(f) / rows;
  std::vector<int64_t> out;
  if (s.split == SplitKind::kReplicated) {
    out.resize(core::NumElements(f));
    std::iota(out.begin(), out.end(), 0);
  } else if (s.split == SplitKind::kRows) {
    for (const IndexRange& r : s.ranges) {
      for (int64_t i = r.begin * inner; i < r.end * inner; ++i) out.push_back(i);
    }
  } else {
    const int64_t cols = f[1], rest = inner / cols;
    for (int64_t row = 0; row < rows; ++row) {
      for (const IndexRange& r : s.ranges) {
        for (int64_t c = r.begin; c < r.end; ++c) {
          for (int64_t k = 0; k < rest; ++k) out.push_back((row * cols + c) * rest + k);
        }
      }
    }
  }
  return out;
}

// Places every rank's gathered values back at their full-tensor positions and checks that
// each element is covered exactly once (replicated: by every rank, identically).
void ExpectReassembles(const ModelConfig& c, const std::string& name, int tp) {
  SCOPED_TRACE(absl::StrCat(name, " tp=", tp));
  std::vector<int> covered;
  for (int r = 0; r < tp; ++r) {
    auto slice = SliceTensor(c, name, tp, r);
    ASSERT_TRUE(slice.ok()) << slice.status();
    const std::vector<int64_t> got = Gather(*slice);
    ASSERT_EQ(static_cast<int64_t>(got.size()), slice->local_elements());
    if (covered.empty()) covered.assign(core::NumElements(slice->full_shape), 0);
    if (slice->split == SplitKind::kReplicated) {
      EXPECT_EQ(slice->local_shape, slice->full_shape);
      continue;
    }
    for (int64_t e : got) {
      ASSERT_GE(e, 0);
      ASSERT_LT(e, static_cast<int64_t>(covered.size()));
      ++covered[e];
    }
  }
  auto first = SliceTensor(c, name, tp, 0);
  if (first->split != SplitKind::kReplicated) {
    for (size_t e = 0; e < covered.size(); ++e) {
      ASSERT_EQ(covered[e], 1) << "element " << e;
    }
  }
}

std::vector<ModelConfig> AllConfigs() {
  std::vector<ModelConfig> out;
  for (const char* preset : {"tiny", "tiny-7"}) out.push_back(*core::TinyPreset(preset));
  return out;
}

TEST(ShardPlanTest, EveryTensorReassemblesForEveryValidTp) {
  for (const ModelConfig& c : AllConfigs()) {
    for (int tp : ValidTpSizes(c)) {
      for (const core::ExpectedTensor& e : core::ExpectedTensors(c)) {
        ExpectReassembles(c, e.name, tp);
        auto slice = SliceTensor(c, e.name, tp, 0);
        ASSERT_TRUE(slice.ok());
        EXPECT_EQ(slice->full_shape, e.shape) << e.name;
      }
    }
  }
}

// The in_proj / conv1d rows of rank r are exactly the channels of the heads it owns: z and x
// rows of head j are [j*P, (j+1)*P) in their segments, dt row j, and the B/C rows of group
// j / (h/G). A contiguous split of the fused tensor would fail this.
TEST(ShardPlanTest, MambaSlicesFollowOwnedHeadsAndGroups) {
  for (const ModelConfig& c : AllConfigs()) {
    const int64_t di = c.d_inner(), gn = c.n_groups * c.ssm_state_size, P = c.mamba_head_dim;
    const int64_t N = c.ssm_state_size, h = c.mamba_num_heads, heads_per_group = h / c.n_groups;
    const std::string layer0 = "backbone.layers.0.mixer.";
    for (int tp : ValidTpSizes(c)) {
      for (int r = 0; r < tp; ++r) {
        SCOPED_TRACE(absl::StrCat("tp=", tp, " rank=", r));
        std::vector<int64_t> want_in, want_conv, want_heads, want_channels;
        std::vector<int64_t> z, x, b, cc, dt, groups;
        for (int64_t j = r * h / tp; j < (r + 1) * h / tp; ++j) {
          for (int64_t p = 0; p < P; ++p) {
            z.push_back(j * P + p);
            x.push_back(di + j * P + p);
          }
          dt.push_back(2 * di + 2 * gn + j);
          want_heads.push_back(j);
          if (groups.empty() || groups.back() != j / heads_per_group) {
            groups.push_back(j / heads_per_group);
          }
        }
        for (int64_t g : groups) {
          for (int64_t n = 0; n < N; ++n) {
            b.push_back(2 * di + g * N + n);
            cc.push_back(2 * di + gn + g * N + n);
          }
        }
        for (auto* seg : {&z, &x, &b, &cc, &dt})
          want_in.insert(want_in.end(), seg->begin(), seg->end());
        for (auto* seg : {&x, &b, &cc}) {
          for (int64_t v : *seg) want_conv.push_back(v - di);
        }
        const auto rows = [&](const std::string& t) {
          auto s = SliceTensor(c, layer0 + t, tp, r);
          EXPECT_TRUE(s.ok()) << s.status();
          std::vector<int64_t> out;
          for (const IndexRange& rg : s->ranges) {
            for (int64_t i = rg.begin; i < rg.end; ++i) out.push_back(i);
          }
          return out;
        };
        EXPECT_EQ(rows("in_proj.weight"), want_in);
        EXPECT_EQ(rows("conv1d.weight"), want_conv);
        EXPECT_EQ(rows("conv1d.bias"), want_conv);
        for (const char* t : {"A_log", "D", "dt_bias"}) EXPECT_EQ(rows(t), want_heads) << t;
        std::vector<int64_t> norm(z);
        EXPECT_EQ(rows("norm.weight"), norm);
        EXPECT_EQ(rows("out_proj.weight"), norm);  // columns
      }
    }
  }
}

// Model spec §4.1: local in_proj rows / conv channels / heads of the 8B model.
TEST(ShardPlanTest, Nemotron8BNumbers) {
  const ModelConfig c = LoadShippedConfig("nemotron-h-8b");
  const std::map<int, std::array<int64_t, 3>> want = {{1, {18560, 10240, 128}},
                                                      {2, {9280, 5120, 64}},
                                                      {4, {4640, 2560, 32}},
                                                      {8, {2320, 1280, 16}}};
  for (const auto& [tp, w] : want) {
    for (int r = 0; r < tp; ++r) {
      auto in = SliceTensor(c, "backbone.layers.0.mixer.in_proj.weight", tp, r);
      auto conv = SliceTensor(c, "backbone.layers.0.mixer.conv1d.weight", tp, r);
      auto heads = SliceTensor(c, "backbone.layers.0.mixer.A_log", tp, r);
      ASSERT_TRUE(in.ok() && conv.ok() && heads.ok());
      EXPECT_EQ(in->local_shape, (core::Shape{w[0], 4096}));
      EXPECT_EQ(conv->local_shape, (core::Shape{w[1], 1, 4}));
      EXPECT_EQ(heads->local_shape, (core::Shape{w[2]}));
    }
  }
  // Attention (layer 7) and MLP (layer 1) of the 8B at tp=4.
  auto q = SliceTensor(c, "backbone.layers.7.mixer.q_proj.weight", 4, 3);
  auto k = SliceTensor(c, "backbone.layers.7.mixer.k_proj.weight", 4, 3);
  auto o = SliceTensor(c, "backbone.layers.7.mixer.o_proj.weight", 4, 3);
  auto up = SliceTensor(c, "backbone.layers.1.mixer.up_proj.weight", 4, 1);
  auto down = SliceTensor(c, "backbone.layers.1.mixer.down_proj.weight", 4, 1);
  ASSERT_TRUE(q.ok() && k.ok() && o.ok() && up.ok() && down.ok());
  EXPECT_EQ(q->ranges, (std::vector<IndexRange>{{3072, 4096}}));
  EXPECT_EQ(k->ranges, (std::vector<IndexRange>{{768, 1024}}));
  EXPECT_EQ(o->split, SplitKind::kColumns);
  EXPECT_EQ(o->local_shape, (core::Shape{4096, 1024}));
  EXPECT_EQ(up->local_shape, (core::Shape{5376, 4096}));
  EXPECT_EQ(down->local_shape, (core::Shape{4096, 5376}));
  // Whole-model state per sequence at tp=1 (spec §7.1/§7.2): 24 x 128*64*128 SSM elements,
  // 24 x 10240*3 conv elements, 4 x 2 x 8*128 KV elements per token.
  auto plan = ShardPlan::Create(c, {1, 1});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->rank(0).ssm_state_elements_per_sequence(), 24 * 128 * 64 * 128);
  EXPECT_EQ(plan->rank(0).conv_state_elements_per_sequence(), 24 * 10240 * 3);
  EXPECT_EQ(plan->rank(0).kv_elements_per_token(), 4 * 2 * 8 * 128);
  EXPECT_EQ(plan->rank(0).weight_elements(), 8100852736);
}

TEST(ShardPlanTest, RanksCoverTheModelAndSplitStateByTp) {
  for (const ModelConfig& c : AllConfigs()) {
    auto whole = ShardPlan::Create(c, {1, 1});
    ASSERT_TRUE(whole.ok());
    const RankShard& all = whole->rank(0);
    for (int tp : ValidTpSizes(c)) {
      for (int pp : {1, 2, 3}) {
        SCOPED_TRACE(absl::StrCat("tp=", tp, " pp=", pp));
        auto plan = ShardPlan::Create(c, {tp, pp});
        ASSERT_TRUE(plan.ok()) << plan.status();
        ASSERT_EQ(plan->ranks().size(), static_cast<size_t>(tp * pp));
        int64_t weights = 0, ssm = 0, conv = 0, kv = 0, replicated = 0;
        std::map<std::string, int> seen;
        for (const RankShard& s : plan->ranks()) {
          EXPECT_EQ(s.layers, plan->partition()[s.stage]);
          EXPECT_EQ(s.vocab.size(), c.vocab_size / tp);
          weights += s.weight_elements();
          ssm += s.ssm_state_elements_per_sequence();
          conv += s.conv_state_elements_per_sequence();
          kv += s.kv_elements_per_token();
          for (const TensorSlice& t : s.tensors) {
            ++seen[t.name];
            if (t.split == SplitKind::kReplicated) replicated += t.local_elements();
            if (t.name == "backbone.embeddings.weight") {
              EXPECT_TRUE(s.first_stage);
            }
            if (t.name == "lm_head.weight" || t.name == "backbone.norm_f.weight") {
              EXPECT_TRUE(s.last_stage);
            }
          }
        }
        // Every tensor held by exactly the tp ranks of one stage; split weights sum to the
        // whole, replicated norms counted tp times.
        for (const core::ExpectedTensor& e : core::ExpectedTensors(c))
          EXPECT_EQ(seen[e.name], tp) << e.name;
        EXPECT_EQ(weights - replicated + replicated / tp, all.weight_elements());
        EXPECT_EQ(ssm, all.ssm_state_elements_per_sequence());
        EXPECT_EQ(conv, all.conv_state_elements_per_sequence());
        EXPECT_EQ(kv, all.kv_elements_per_token());
      }
    }
  }
}

TEST(ShardPlanTest, StateSlicesFollowHeads) {
  const ModelConfig c = *core::TinyPreset("tiny");
  auto plan = ShardPlan::Create(c, {2, 1});
  ASSERT_TRUE(plan.ok());
  const RankShard& r1 = plan->rank(1);
  const int64_t di = c.d_inner(), gn = c.n_groups * c.ssm_state_size;
  for (const StateSlice& s : r1.states) {
    if (s.kind == StateKind::kConv) {
      EXPECT_EQ(s.ranges,
                (std::vector<IndexRange>{
                    {di / 2, di}, {di + gn / 2, di + gn}, {di + gn + gn / 2, di + 2 * gn}}));
    } else if (s.kind == StateKind::kSsm) {
      EXPECT_EQ(s.local_shape,
                (core::Shape{c.mamba_num_heads / 2, c.mamba_head_dim, c.ssm_state_size}));
    } else {
      EXPECT_EQ(s.local_shape, (core::Shape{c.num_key_value_heads / 2, c.head_dim}));
    }
  }
}

TEST(ShardPlanTest, InvalidLayoutsNameReasonAndChoices) {
  const ModelConfig tiny7 = *core::TinyPreset("tiny-7");
  auto bad_tp = ShardPlan::Create(tiny7, {4, 1});
  ASSERT_FALSE(bad_tp.ok());
  EXPECT_EQ(bad_tp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_tp.status().message()),
              ::testing::AllOf(::testing::HasSubstr("tp=4"), ::testing::HasSubstr("n_groups"),
                               ::testing::HasSubstr("1, 2")));
  EXPECT_FALSE(ShardPlan::Create(tiny7, {1, 8}).ok());
  EXPECT_FALSE(ShardPlan::Create(tiny7, {1, 0}).ok());
  EXPECT_FALSE(ShardPlan::Create(tiny7, {0, 1}).ok());
  EXPECT_FALSE(ShardPlan::Create(tiny7, {1, 2}, {{0, 3}, {4, 7}}).ok());  // gap
  EXPECT_FALSE(ShardPlan::Create(tiny7, {1, 2}, {{0, 7}, {7, 7}}).ok());  // empty stage
  auto explicit_plan = ShardPlan::Create(tiny7, {1, 2}, {{0, 1}, {1, 7}});
  ASSERT_TRUE(explicit_plan.ok()) << explicit_plan.status();
  EXPECT_EQ(explicit_plan->rank(1).layers, (LayerRange{1, 7}));
  EXPECT_FALSE(SliceTensor(tiny7, "backbone.layers.0.mixer.q_proj.weight", 1, 0).ok());
  EXPECT_FALSE(SliceTensor(tiny7, "backbone.layers.99.norm.weight", 1, 0).ok());
  EXPECT_FALSE(SliceTensor(tiny7, "nope", 1, 0).ok());
  EXPECT_FALSE(SliceTensor(tiny7, "lm_head.weight", 2, 2).ok());
  EXPECT_FALSE(SliceTensor(tiny7, "lm_head.weight", 3, 0).ok());
}

}  // namespace
}  // namespace tandem::sharding
