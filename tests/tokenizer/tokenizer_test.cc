// Tokenizer behaviour beyond the HF goldens: streaming detokenization, invalid UTF-8 input,
// malformed tokenizer.json, large inputs, and the UTF-8 helpers.
#include "tokenizer/tokenizer.h"

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/testdata.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {
namespace {

using testing::ReadFile;
using testing::TestDataPath;

std::unique_ptr<Tokenizer> Load(const std::string& name) {
  auto t = Tokenizer::FromFile(TestDataPath(name + ".json"));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(TokenizerTest, NemotronLayout) {
  auto t = Load("tokenizer");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->vocab_size(), 4096);
  EXPECT_EQ(t->TokenToId("<unk>"), 0);
  EXPECT_EQ(t->TokenToId("<s>"), 1);
  EXPECT_EQ(t->TokenToId("</s>"), 2);
  EXPECT_EQ(t->TokenToId("<SPECIAL_999>"), 999);
  EXPECT_TRUE(t->IsSpecial(999));
  EXPECT_FALSE(t->IsSpecial(1000));
  auto ids = t->Encode("Hello </s> world", true);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->front(), 1);  // BOS from the template
  EXPECT_NE(std::find(ids->begin(), ids->end(), 2), ids->end());
  EXPECT_EQ(t->Decode(*ids, true), "Hello  world");
  EXPECT_EQ(t->Decode(*ids, false), "<s>Hello </s> world");
  auto empty = t->Encode("", true);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, std::vector<int32_t>({1}));
}

TEST(TokenizerTest, InvalidUtf8InputIsRejectedWithItsOffset) {
  auto t = Load("tokenizer");
  ASSERT_NE(t, nullptr);
  for (const auto& [text, offset] :
       std::vector<std::pair<std::string, int>>{{"abc\xff", 3},
                                                {"\xc3", 0},
                                                {"ok \xe2\x82", 3},
                                                {"\xed\xa0\x80", 0},
                                                {"a\xc0\xaf", 1},
                                                {"\xf4\x90\x80\x80", 0},
                                                {std::string("x\0\x80", 3), 2}}) {
    auto ids = t->Encode(text, false);
    ASSERT_FALSE(ids.ok()) << absl::CEscape(text);
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(ids.status().message().find(absl::StrCat("byte offset ", offset)), std::string::npos)
        << ids.status();
  }
  // NUL is valid UTF-8.
  EXPECT_TRUE(t->Encode(std::string("a\0b", 3), false).ok());
}

TEST(Utf8Test, LossyDecodingUsesMaximalSubparts) {
  auto lossy = [](absl::string_view s) {
    std::string out;
    AppendUtf8Lossy(s, true, &out);
    return out;
  };
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("a\xe2\x82"), "a" + r);
  EXPECT_EQ(lossy("\xe2\x82"
                  "A"),
            r + "A");
  EXPECT_EQ(lossy("\xc0\xaf"), r + r);
  EXPECT_EQ(lossy("\xed\xa0\x80"), r + r + r);
  EXPECT_EQ(lossy("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
  std::string held;
  EXPECT_EQ(AppendUtf8Lossy("ab\xf0\x9f\x98", false, &held), 2u);
  EXPECT_EQ(held, "ab");
}

bool IsValidUtf8(const std::string& s) { return ValidateUtf8(s).ok(); }

// Random ids: byte tokens (split characters), specials, unknown ids and ordinary tokens.
std::vector<int32_t> RandomIds(std::mt19937& rng, const Tokenizer& t, int length) {
  std::vector<int32_t> ids;
  std::uniform_int_distribution<int> kind(0, 9), any(0, t.vocab_size() + 10);
  for (int i = 0; i < length; ++i) {
    const int k = kind(rng);
    if (k < 4) {  // a single-byte token, often half a character
      const uint8_t b = static_cast<uint8_t>(rng() % 256);
      std::string text(1, static_cast<char>(b));
      // The token whose decoded bytes are exactly `b`.
      for (int32_t id = 0; id < t.vocab_size(); ++id) {
        std::string bytes;
        if (t.AppendTokenBytes(id, false, false, &bytes) && bytes == text) {
          ids.push_back(id);
          break;
        }
      }
    } else if (k < 5) {
      ids.push_back(static_cast<int32_t>(rng() % 8));
    } else {
      ids.push_back(any(rng));
    }
  }
  return ids;
}

TEST(StreamingDetokenizerTest, DeltasConcatenateToDecodeAndAreValidUtf8) {
  std::mt19937 rng(12345);
  for (const std::string name : {"tokenizer", "gpt2", "added", "splits"}) {
    auto t = Load(name);
    ASSERT_NE(t, nullptr);
    int held_back = 0;
    for (int trial = 0; trial < 300; ++trial) {
      const auto ids = RandomIds(rng, *t, 1 + trial % 40);
      for (bool skip : {false, true}) {
        StreamingDetokenizer stream(*t, skip);
        std::string all;
        for (int32_t id : ids) {
          const std::string delta = stream.Add(id);
          ASSERT_TRUE(IsValidUtf8(delta)) << name << " trial " << trial;
          held_back += stream.pending_bytes() > 0;
          all += delta;
        }
        const std::string last = stream.Finish();
        ASSERT_TRUE(IsValidUtf8(last));
        all += last;
        ASSERT_EQ(all, t->Decode(ids, skip)) << name << " trial " << trial;
      }
    }
    if (name != "splits") {  // no decoder: tokens are whole strings, nothing to hold back
      EXPECT_GT(held_back, 50) << name << ": the random ids should split characters";
    }
  }
}

TEST(StreamingDetokenizerTest, NeverSplitsACharacterOfRealText) {
  auto t = Load("tokenizer");
  ASSERT_NE(t, nullptr);
  std::string text = ReadFile(TestDataPath("corpus/mixed.txt"));
  size_t cut = 20000;
  while ((static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  auto ids = t->Encode(text, false);
  ASSERT_TRUE(ids.ok());
  StreamingDetokenizer stream(*t, false);
  std::string all;
  for (int32_t id : *ids) {
    const std::string delta = stream.Add(id);
    ASSERT_TRUE(IsValidUtf8(delta));
    ASSERT_EQ(delta.find("\xEF\xBF\xBD"), std::string::npos);
    all += delta;
  }
  all += stream.Finish();
  EXPECT_EQ(all, text);
}

TEST(TokenizerTest, MultiMegabyteInputEncodes) {
  auto t = Load("tokenizer");
  ASSERT_NE(t, nullptr);
  std::string text;
  const std::string corpus =
      ReadFile(TestDataPath("corpus/prose.txt")) + ReadFile(TestDataPath("corpus/code.txt"));
  while (text.size() < (3u << 20)) text += corpus;
  text += std::string(1 << 20, ' ') + "end" + std::string(200000, '\n') + std::string(100000, '9');
  auto ids = t->Encode(text, true);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_GT(ids->size(), text.size() / 10);
  EXPECT_EQ(t->Decode(*ids, true), text);
}

TEST(TokenizerTest, ConcurrentEncodesMatchSerialOnes) {
  auto t = Load("tokenizer");
  ASSERT_NE(t, nullptr);
  std::vector<std::string> texts;
  for (const char* f : {"prose.txt", "code.txt", "mixed.txt", "numbers.txt"}) {
    texts.push_back(ReadFile(TestDataPath(std::string("corpus/") + f)));
  }
  std::vector<std::vector<int32_t>> serial;
  for (const auto& text : texts) serial.push_back(t->Encode(text, true).value());
  auto fresh = Load("tokenizer");  // empty word cache, filled concurrently
  ASSERT_NE(fresh, nullptr);
  std::vector<std::vector<int32_t>> parallel(texts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < texts.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 3; ++round) parallel[i] = fresh->Encode(texts[i], true).value();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(parallel, serial);
}

std::string MinimalJson(const std::string& replace_from = "", const std::string& replace_to = "") {
  std::string json = R"({
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [3], "tokens": ["<s>"]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
  })";
  if (!replace_from.empty()) json = absl::StrReplaceAll(json, {{replace_from, replace_to}});
  return json;
}

TEST(TokenizerTest, MinimalJsonWorks) {
  auto t = Tokenizer::FromJson(MinimalJson());
  ASSERT_TRUE(t.ok()) << t.status();
  auto ids = (*t)->Encode("abab<s>ba", true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, std::vector<int32_t>({3, 2, 2, 3, 1, 0}));
  // Pair-form merges load too.
  ASSERT_TRUE(
      Tokenizer::FromJson(MinimalJson("\"merges\": [\"a b\"]", "\"merges\": [[\"a\", \"b\"]]"))
          .ok());
}

TEST(TokenizerTest, MutatedJsonNeverCrashes) {
  std::mt19937 rng(7);
  const std::string base = absl::StrReplaceAll(
      MinimalJson(), {{"\"special\": true}]",
                       "\"special\": true}, {\"id\": 4, \"content\": \" ab\", \"lstrip\": true, "
                       "\"rstrip\": true, \"single_word\": true, \"normalized\": true}]"},
                      {"\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}"}});
  ASSERT_TRUE(Tokenizer::FromJson(base).ok()) << Tokenizer::FromJson(base).status();
  const std::string alphabet = "{}[]\",:0123456789abtrue-\\ ";
  int loaded = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string json = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % json.size();
      switch (rng() % 3) {
        case 0:
          json[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          json.erase(pos, 1 + rng() % 8);
          break;
        default:
          json.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
      }
    }
    auto t = Tokenizer::FromJson(json);
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
      continue;
    }
    ++loaded;
    std::string text;
    const std::string pieces = "ab <s> \xc3\xa9\t";
    for (int i = 0; i < 30; ++i) text += pieces[rng() % pieces.size()];
    if (!ValidateUtf8(text).ok()) continue;
    auto ids = (*t)->Encode(text, true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    StreamingDetokenizer stream(**t, false);
    std::string all;
    for (int32_t id : *ids) all += stream.Add(id);
    all += stream.Finish();
    EXPECT_EQ(all, (*t)->Decode(*ids, false));
  }
  EXPECT_GT(loaded, 10);
}

TEST(TokenizerTest, MalformedJsonNamesThePath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"[]", "(root)"},
      {MinimalJson("\"model\"", "\"modelx\""), "(root).model: missing"},
      {MinimalJson("\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}", "\"vocab\": [\"a\"]"),
       "model.vocab"},
      {MinimalJson("\"merges\": [\"a b\"]", "\"merges\": [\"a c\"]"), "model.merges[0]"},
      {MinimalJson("\"merges\": [\"a b\"]", "\"merges\": [\"ab\"]"), "model.merges[0]"},
      {MinimalJson("\"merges\": [\"a b\"]", "\"merges\": [7]"), "model.merges[0]"},
      {MinimalJson("\"b\": 1", "\"b\": -1"), "model.vocab[\"b\"]"},
      {MinimalJson("\"b\": 1", "\"b\": 1000000000"), "too sparse"},
      {MinimalJson("\"type\": \"BPE\"", "\"type\": \"WordPiece\""), "model.type"},
      {MinimalJson("\"normalizer\": null", "\"normalizer\": {\"type\": \"Lowercase\"}"),
       "normalizer.type"},
      {MinimalJson(
           "\"normalizer\": null",
           "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, "
           "{\"type\": \"Strip\"}]}"),
       "normalizer.normalizers[1].type"},
      {MinimalJson("\"type\": \"ByteLevel\", \"add_prefix_space\"",
                   "\"type\": \"Metaspace\", \"x\""),
       "pre_tokenizer.type"},
      {MinimalJson("\"use_regex\": true", "\"use_regex\": 3"), "pre_tokenizer.use_regex"},
      {MinimalJson("\"decoder\": {\"type\": \"ByteLevel\"}",
                   "\"decoder\": {\"type\": \"WordPiece\"}"),
       "decoder.type"},
      {MinimalJson("\"ids\": [3]", "\"ids\": [\"x\"]"), "post_processor.special_tokens"},
      {MinimalJson("{\"id\": 3, \"content\": \"<s>\"", "{\"id\": 3, \"content\": 5"),
       "added_tokens[0].content"},
      {MinimalJson("{\"id\": 3, \"content\"", "{\"content\""), "added_tokens[0].id"},
      {MinimalJson("\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                   "\"use_regex\": true}",
                   "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                   "\"behavior\": \"Isolated\"}"),
       "pre_tokenizer.pattern"},
  };
  for (const auto& [json, expected] : cases) {
    auto t = Tokenizer::FromJson(json);
    ASSERT_FALSE(t.ok()) << json;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
    EXPECT_NE(t.status().message().find(expected), std::string::npos)
        << "expected \"" << expected << "\" in: " << t.status();
  }
  EXPECT_EQ(Tokenizer::FromFile("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem::tokenizer
