// Tandem's tokenizer against Hugging Face `tokenizers` goldens (tests/testdata/tokenizer/): ids for
// the whole corpus with and without special tokens, decodes, and round trips, for three configs.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/tokenizer/testdata.h"
#include "tokenizer/tokenizer.h"

namespace tandem::tokenizer {
namespace {

using testing::ReadDecodeGoldens;
using testing::ReadFile;
using testing::ReadIdsGoldens;
using testing::TestDataPath;

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto t = Tokenizer::FromFile(TestDataPath(GetParam() + ".json"));
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = std::move(t).value();
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(GoldenTest, EncodeMatchesHuggingFaceOnWholeCorpus) {
  const auto goldens = ReadIdsGoldens(GetParam());
  ASSERT_EQ(goldens.size(), 12u);
  size_t total = 0;
  for (const auto& g : goldens) {
    const std::string text = ReadFile(TestDataPath("corpus/" + g.file));
    ASSERT_FALSE(text.empty()) << g.file;
    auto ids = tokenizer_->Encode(text, g.add_special_tokens);
    ASSERT_TRUE(ids.ok()) << ids.status();
    size_t i = 0;
    while (i < ids->size() && i < g.ids.size() && (*ids)[i] == g.ids[i]) ++i;
    if (i < ids->size() || i < g.ids.size()) {
      auto show = [&](const std::vector<int32_t>& v) {
        std::string s;
        for (size_t k = i >= 3 ? i - 3 : 0; k < std::min(v.size(), i + 4); ++k) {
          s += std::to_string(v[k]) + "(" + tokenizer_->IdToToken(v[k]).value_or("?") + ") ";
        }
        return s;
      };
      ADD_FAILURE() << GetParam() << " " << g.file << " add_special=" << g.add_special_tokens
                    << ": first difference at id " << i << " of " << g.ids.size()
                    << "\n  tandem: " << show(*ids) << "\n  hf:     " << show(g.ids);
    }
    total += g.ids.size();
  }
  EXPECT_GT(total, 50000u);
}

TEST_P(GoldenTest, DecodeOfEncodeIsIdentityWhereHuggingFaceHasIt) {
  int checked = 0;
  for (const auto& g : ReadIdsGoldens(GetParam())) {
    if (!g.roundtrips || g.add_special_tokens) continue;
    const std::string text = ReadFile(TestDataPath("corpus/" + g.file));
    auto ids = tokenizer_->Encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(tokenizer_->Decode(*ids, false), text) << g.file;
    ++checked;
  }
  if (GetParam() == "tokenizer") {
    EXPECT_EQ(checked, 6);
  }
}

TEST_P(GoldenTest, DecodeMatchesHuggingFace) {
  const auto goldens = ReadDecodeGoldens(GetParam());
  ASSERT_EQ(goldens.size(), 800u);
  for (size_t i = 0; i < goldens.size(); ++i) {
    const auto& g = goldens[i];
    EXPECT_EQ(tokenizer_->Decode(g.ids, g.skip_special_tokens), g.text)
        << GetParam() << " decode golden " << i << " skip=" << g.skip_special_tokens;
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, GoldenTest,
                         ::testing::Values("tokenizer", "gpt2", "added", "splits"));

}  // namespace
}  // namespace tandem::tokenizer
