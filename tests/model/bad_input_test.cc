// Bad input is an error that names the problem, never a crash.
#include <filesystem>

#include "core/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "tests/model/model_test_util.h"

namespace tandem::model {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = testing::WriteTiny(dir_, "tiny", 3, core::DType::kBF16);
    auto m = NemotronHModel::Load(model_dir_, {});
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
  }
  // Rewrites the checkpoint with `edit` applied to its tensor list.
  std::string Rewrite(
      const std::function<void(std::vector<std::pair<std::string, core::Tensor>>&)>& edit) {
    auto ckpt = core::Checkpoint::Open(model_dir_);
    EXPECT_TRUE(ckpt.ok());
    std::vector<std::pair<std::string, core::Tensor>> tensors;
    for (const auto& name : ckpt->Names()) tensors.emplace_back(name, ckpt->Get(name)->Clone());
    edit(tensors);
    const std::string out = dir_.Sub(absl::StrCat("edited", edits_++));
    std::filesystem::create_directories(out);
    std::filesystem::copy_file(model_dir_ + "/config.json", out + "/config.json");
    EXPECT_TRUE(core::WriteCheckpoint(out, tensors, 1).ok());
    return out;
  }

  TempDir dir_;
  std::string model_dir_;
  std::unique_ptr<NemotronHModel> model_;
  int edits_ = 0;
};

TEST_F(BadInputTest, TokenIdOutsideVocabulary) {
  auto r = PromptLogits(*model_, {1, 2, 4096});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("token id 4096"));
  EXPECT_FALSE(PromptLogits(*model_, {-1}).ok());
}

TEST_F(BadInputTest, EmptyPrompt) {
  auto r = PromptLogits(*model_, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("empty"));
}

TEST_F(BadInputTest, PromptPlusNewTokensBeyondMaximum) {
  GenerateOptions options;
  options.max_new_tokens = model_->config().max_position_embeddings;
  auto r = Generate(*model_, {1, 2, 3}, options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("exceeds the model's maximum"));
}

TEST_F(BadInputTest, PlansOutsideTheStateCapacity) {
  model_->AllocateState({2, 4, 16});
  const std::vector<int32_t> ids = {5, 6, 7};
  EXPECT_THAT(std::string(model_->Step({{{2, {0}, 0, ids}}}).status().message()),
              HasSubstr("slot outside"));
  EXPECT_THAT(std::string(model_->Step({{{0, {9}, 0, ids}}}).status().message()),
              HasSubstr("block id 9"));
  EXPECT_THAT(std::string(model_->Step({{{0, {}, 0, ids}}}).status().message()),
              HasSubstr("block table has 0 blocks"));
  EXPECT_THAT(std::string(model_->Step({{{0, {0}, 0, ids}, {0, {1}, 0, ids}}}).status().message()),
              HasSubstr("slot used twice"));
  EXPECT_THAT(std::string(model_->Step({{{0, {0}, 0, ids}, {1, {0}, 0, ids}}}).status().message()),
              HasSubstr("written by two sequences"));
  EXPECT_THAT(std::string(model_->Step({{{0, {0}, 0, {}}}}).status().message()),
              HasSubstr("no tokens"));
  EXPECT_TRUE(model_->Step({{{0, {0}, 0, ids}, {1, {1}, 0, ids}}}).ok());
}

TEST_F(BadInputTest, CheckpointMissingATensorIsNamed) {
  const std::string dir = Rewrite([](auto& tensors) {
    tensors.erase(
        std::remove_if(tensors.begin(), tensors.end(),
                       [](const auto& t) { return t.first == "backbone.layers.2.mixer.A_log"; }),
        tensors.end());
  });
  auto m = NemotronHModel::Load(dir, {});
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("backbone.layers.2.mixer.A_log"));
}

TEST_F(BadInputTest, CheckpointWithAWrongShapeIsNamed) {
  const std::string dir = Rewrite([](auto& tensors) {
    for (auto& [name, t] : tensors) {
      if (name == "backbone.layers.3.mixer.k_proj.weight") t = t.Slice0(0, t.dim(0) - 1).Clone();
    }
  });
  auto m = NemotronHModel::Load(dir, {});
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("backbone.layers.3.mixer.k_proj.weight"));
}

TEST_F(BadInputTest, MissingDirectory) {
  auto m = NemotronHModel::Load(dir_.Sub("nope"), {});
  EXPECT_FALSE(m.ok());
}

}  // namespace
}  // namespace tandem::model
