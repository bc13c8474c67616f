// Layout invariance on real processes (DESIGN.md §6.3): every valid tp x pp layout gives the
// single-process all-position logits and the same 32 greedy tokens.
//
// Tolerances: f32 checkpoints rel max err <= 1e-4 (the only difference is the order of the f32
// partial sums of the TP all-reduces). bf16 checkpoints: the forward rounds activations to bf16
// at the reference's rounding points; a different summation order of the TP partials can move a
// value across a bf16 rounding boundary (one ulp = 2^-8 relative), and that flip propagates
// through the following layers, so we allow rel max err <= 1e-2 (between two and three bf16 ulps of
// the largest logit); greedy tokens must still be identical.
#include <map>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/worker_test_util.h"

namespace tandem::worker {
namespace {

struct Reference {
  std::vector<int32_t> prompt;
  core::Tensor logits;
  std::vector<int32_t> greedy;
};

const Reference& GetReference(const std::string& preset, core::DType dtype) {
  static std::map<std::string, std::unique_ptr<Reference>> cache;
  const std::string key = absl::StrCat(preset, static_cast<int>(dtype));
  auto& ref = cache[key];
  if (!ref) {
    ref = std::make_unique<Reference>();
    const std::string dir = TinyModelDir(preset, dtype);
    auto model = model::NemotronHModel::Load(dir, model::ModelOptions{});
    EXPECT_TRUE(model.ok()) << model.status();
    ref->prompt = RandomPrompt(21, static_cast<int>((*model)->config().vocab_size), 11);
    auto logits = model::PromptLogits(**model, ref->prompt);
    EXPECT_TRUE(logits.ok()) << logits.status();
    ref->logits = *logits;
    model::GenerateOptions g;
    g.max_new_tokens = 32;
    g.stop_at_eos = false;
    auto tokens = model::Generate(**model, ref->prompt, g);
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    ref->greedy = *tokens;
  }
  return *ref;
}

struct Case {
  std::string preset;
  core::DType dtype;
  int tp;
  int pp;
  std::vector<int64_t> stage_layers;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.preset << (c.dtype == core::DType::kF32 ? "/f32" : "/bf16") << " tp=" << c.tp
      << " pp=" << c.pp;
  if (!c.stage_layers.empty()) *os << " stages=" << ::testing::PrintToString(c.stage_layers);
}

class LayoutInvarianceTest : public ::testing::TestWithParam<Case> {};

TEST_P(LayoutInvarianceTest, LogitsAndGreedyTokensMatchOneProcess) {
  const Case& c = GetParam();
  const Reference& ref = GetReference(c.preset, c.dtype);
  LocalClusterOptions o = ClusterOptions(TinyModelDir(c.preset, c.dtype), c.tp, c.pp);
  o.stage_layers = c.stage_layers;
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto logits = DistributedPromptLogits(**cluster, ref.prompt);
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_EQ(logits->shape(), ref.logits.shape());
  const double err = RelMaxErr(ref.logits.data<float>(), logits->data<float>(), ref.logits.numel());
  EXPECT_LE(err, c.dtype == core::DType::kF32 ? 1e-4 : 1e-2);
  RecordProperty("rel_max_err", ::testing::PrintToString(err));
  std::printf("rel max err %.3g\n", err);
  auto tokens = DistributedGenerate(**cluster, ref.prompt, 32, /*stop_at_eos=*/false);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, ref.greedy);
}

std::vector<Case> Cases() {
  std::vector<Case> out;
  // Every layout on one preset and dtype...
  for (int tp : {1, 2, 4}) {
    for (int pp : {1, 2, 3}) out.push_back({"tiny", core::DType::kF32, tp, pp, {}});
  }
  // ...a subset on the others (tiny-7 allows tp in {1, 2}).
  out.push_back({"tiny", core::DType::kBF16, 2, 2, {}});
  out.push_back({"tiny", core::DType::kBF16, 4, 3, {}});
  out.push_back({"tiny-7", core::DType::kBF16, 1, 3, {}});
  out.push_back({"tiny-7", core::DType::kBF16, 2, 1, {}});
  out.push_back({"tiny-7", core::DType::kBF16, 2, 2, {}});
  out.push_back({"tiny-7", core::DType::kF32, 2, 3, {}});
  // Uneven stages; "M-M*-M-" as [M-][M*-][M-] and [M][-M*-M-]: stages without attention.
  out.push_back({"tiny-7", core::DType::kF32, 2, 3, {2, 3, 2}});
  out.push_back({"tiny-7", core::DType::kF32, 1, 2, {1, 6}});
  out.push_back({"tiny", core::DType::kF32, 2, 3, {1, 8, 2}});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Layouts, LayoutInvarianceTest, ::testing::ValuesIn(Cases()));

TEST(LayoutValidationTest, Tiny7RejectsTp4WithTheValidChoices) {
  auto cluster = LocalCluster::Start(
      ClusterOptions(TinyModelDir("tiny-7", core::DType::kBF16), /*tp=*/4, /*pp=*/1));
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().code(), absl::StatusCode::kInvalidArgument) << cluster.status();
  EXPECT_THAT(std::string(cluster.status().message()),
              ::testing::AllOf(::testing::HasSubstr("tp=4"), ::testing::HasSubstr("n_groups"),
                               ::testing::HasSubstr("valid tp sizes")));
}

}  // namespace
}  // namespace tandem::worker
