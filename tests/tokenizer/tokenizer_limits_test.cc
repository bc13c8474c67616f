// Hostile tokenizer.json: nesting 10^5 deep, huge arrays, wrong types. Each must fail with a clean
// error (naming the limit or the path) in bounded memory, never crash.
#include <sys/resource.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tokenizer/tokenizer.h"

namespace tandem::tokenizer {
namespace {

// A loadable tokenizer.json whose pre_tokenizer is `pre_tokenizer`.
std::string WithPreTokenizer(const std::string& pre_tokenizer,
                             const std::string& normalizer = "null") {
  return absl::StrCat(R"({"added_tokens": [], "normalizer": )", normalizer,
                      R"(, "pre_tokenizer": )", pre_tokenizer,
                      R"(, "post_processor": null, "decoder": {"type": "ByteLevel"},
      "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})");
}

// `depth` Sequences nested in one another around `leaf`.
std::string NestedSequence(int depth, const std::string& list_key, const std::string& leaf) {
  std::string out;
  out.reserve(depth * 48 + leaf.size());
  for (int i = 0; i < depth; ++i)
    absl::StrAppend(&out, R"({"type": "Sequence", ")", list_key, R"(": [)");
  out += leaf;
  for (int i = 0; i < depth; ++i) out += "]}";
  return out;
}

long MaxRssKiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

void ExpectError(const std::string& json, const std::string& expected) {
  auto t = Tokenizer::FromJson(json);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
  EXPECT_NE(t.status().message().find(expected), std::string::npos)
      << "expected \"" << expected << "\" in: " << t.status().message().substr(0, 300);
}

TEST(TokenizerLimitsTest, NestingIsBoundedLikeHuggingFace) {
  const long rss_before = MaxRssKiB();
  const std::string byte_level = R"({"type": "ByteLevel", "add_prefix_space": false})";
  // 10^5 levels: pre-tokenizer, normalizer and post-processor Sequences, and bare arrays.
  ExpectError(WithPreTokenizer(NestedSequence(100000, "pretokenizers", byte_level)),
              "JSON nesting exceeds the limit of 128 levels");
  ExpectError(WithPreTokenizer("null", NestedSequence(100000, "normalizers", R"({"type": "NFC"})")),
              "JSON nesting exceeds the limit of 128 levels");
  ExpectError(
      absl::StrReplaceAll(WithPreTokenizer("null"),
                          {{R"("post_processor": null)",
                            "\"post_processor\": " + NestedSequence(100000, "processors", "")}}),
      "JSON nesting exceeds the limit of 128 levels");
  ExpectError(WithPreTokenizer(std::string(100000, '[') + std::string(100000, ']')),
              "tokenizer.json: JSON nesting exceeds the limit of 128 levels (at byte");
  // Unbalanced, and brackets inside strings do not count.
  ExpectError(std::string(100000, '{'), "JSON nesting exceeds the limit of 128");
  ExpectError(WithPreTokenizer("null") + std::string(100000, '['), "limit of 128");
  ExpectError(WithPreTokenizer("null") + std::string(100, '['), "not valid JSON");
  auto in_string = Tokenizer::FromJson(
      absl::StrReplaceAll(WithPreTokenizer("null"),
                          {{R"("b": 1)", "\"b\": 1, \"" + std::string(100000, '[') + "\": 3"}}));
  EXPECT_TRUE(in_string.ok()) << in_string.status();
  // 60 nested Sequences (121 JSON levels) load, as in HF; 64 (129 levels) do not.
  EXPECT_TRUE(
      Tokenizer::FromJson(WithPreTokenizer(NestedSequence(60, "pretokenizers", byte_level))).ok());
  ExpectError(WithPreTokenizer(NestedSequence(64, "pretokenizers", byte_level)), "limit of 128");
  EXPECT_LT(MaxRssKiB() - rss_before, 256 * 1024) << "KiB";
}

TEST(TokenizerLimitsTest, HugeArraysFailCleanly) {
  const long rss_before = MaxRssKiB();
  // 2*10^5 merges of unknown tokens: the first is named.
  std::string merges = "[";
  for (int i = 0; i < 200000; ++i) absl::StrAppend(&merges, i ? "," : "", "\"x y\"");
  merges += "]";
  ExpectError(absl::StrReplaceAll(WithPreTokenizer("null"), {{R"(["a b"])", merges}}),
              "model.merges[0]: merge \"x\" + \"y\" refers to a token missing from model.vocab");
  // 10^5 steps in one Sequence load (flat lists are not recursion); a wrong type in the last one
  // is named by its index.
  std::string steps;
  for (int i = 0; i < 100000; ++i) absl::StrAppend(&steps, i ? "," : "", "null");
  EXPECT_TRUE(Tokenizer::FromJson(WithPreTokenizer(absl::StrCat(
                                      R"({"type": "Sequence", "pretokenizers": [)", steps, "]}")))
                  .ok());
  ExpectError(
      WithPreTokenizer(absl::StrCat(R"({"type": "Sequence", "pretokenizers": [)", steps, ", 7]}")),
      "pre_tokenizer.pretokenizers[100000]: expected an object, found number");
  // 2*10^5 added tokens with ids far past the vocabulary.
  std::string added = "[";
  for (int i = 0; i < 200000; ++i) {
    absl::StrAppend(&added, i ? "," : "", R"({"id": )", 200000000 - i, R"(, "content": "t)", i,
                    "\"}");
  }
  added += "]";
  auto t = Tokenizer::FromJson(absl::StrReplaceAll(
      WithPreTokenizer("null"), {{R"("added_tokens": [])", "\"added_tokens\": " + added}}));
  // HF assigns added tokens the next free ids, whatever the file says: this loads, densely.
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 3 + 200000);
  EXPECT_LT(MaxRssKiB() - rss_before, 1024 * 1024) << "KiB";
}

TEST(TokenizerLimitsTest, WrongTypesNameThePath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {WithPreTokenizer(R"({"type": "Sequence", "pretokenizers": {"a": 1}})"),
       "pre_tokenizer.pretokenizers: expected an array"},
      {WithPreTokenizer(R"({"type": ["Sequence"]})"), "pre_tokenizer.type: expected a string"},
      {WithPreTokenizer("null", R"({"type": "Sequence", "normalizers": "NFC"})"),
       "normalizer.normalizers: expected an array"},
      {WithPreTokenizer(
           R"({"type": "Split", "pattern": {"Regex": [[[[1]]]]}, "behavior": "Isolated"})"),
       "pre_tokenizer.pattern.Regex: expected a string, found array"},
      {absl::StrReplaceAll(WithPreTokenizer("null"),
                           {{R"("vocab": {)", R"("vocab": {"c": [[[[3]]]], )"}}),
       "model.vocab[\"c\"]: expected a token id"},
      {absl::StrReplaceAll(WithPreTokenizer("null"),
                           {{R"("added_tokens": [])", R"("added_tokens": {})"}}),
       "added_tokens: expected an array"},
  };
  for (const auto& [json, expected] : cases) ExpectError(json, expected);
}

}  // namespace
}  // namespace tandem::tokenizer
