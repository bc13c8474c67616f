// `tandem tokenize` / `tandem detokenize` through the real executable.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/cli_test_util.h"

namespace tandem::cli::testing {
namespace {

std::string TokenizerJson() {
  return std::string(TANDEM_SOURCE_DIR) + "/tests/testdata/tokenizer/tokenizer.json";
}

TEST(TokenizeCliTest, TokenizeThenDetokenizeRoundTrips) {
  const std::string text = "Hello wörld 👩‍💻\t\n  </s> 42";
  const Result ids = Tandem("tokenize --tokenizer " + TokenizerJson() + " --text '" + text +
                            "' --add-special-tokens");
  ASSERT_EQ(ids.exit_code, 0) << ids.output;
  ASSERT_FALSE(ids.output.empty());
  EXPECT_EQ(ids.output.back(), '\n');
  EXPECT_EQ(ids.output.rfind("1,", 0), 0u) << "BOS first: " << ids.output;
  EXPECT_EQ(ids.output.find(' '), std::string::npos);
  const std::string list = ids.output.substr(0, ids.output.size() - 1);
  const Result back = Tandem("detokenize --tokenizer " + TokenizerJson() + " --ids " + list);
  ASSERT_EQ(back.exit_code, 0) << back.output;
  EXPECT_EQ(back.output, "<s>" + text);
  const Result skipped =
      Tandem("detokenize --tokenizer " + TokenizerJson() + " --skip-special-tokens --ids " + list);
  EXPECT_EQ(skipped.output, "Hello wörld 👩‍💻\t\n   42");
}

TEST(TokenizeCliTest, FileInputMatchesTextInput) {
  const std::string file =
      std::string(TANDEM_SOURCE_DIR) + "/tests/testdata/tokenizer/corpus/code.txt";
  const Result from_file = Tandem("tokenize --tokenizer " + TokenizerJson() + " --file " + file);
  ASSERT_EQ(from_file.exit_code, 0);
  EXPECT_GT(from_file.output.size(), 1000u);
  const Result small = Tandem("tokenize --tokenizer " + TokenizerJson() + " --text abc");
  ASSERT_EQ(small.exit_code, 0);
  EXPECT_THAT(small.output, ::testing::MatchesRegex("[0-9]+(,[0-9]+)*\n"));
}

TEST(TokenizeCliTest, BadArgumentsFailWithAMessage) {
  Result r = Tandem("tokenize --tokenizer " + TokenizerJson(), true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--text"));
  r = Tandem("tokenize --tokenizer /nonexistent.json --text x", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent.json"));
  r = Tandem("detokenize --tokenizer " + TokenizerJson() + " --ids 1,x", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("'x'"));
  r = Tandem("detokenize --tokenizer " + TokenizerJson() + " --ids 99999", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("99999"));
  r = Tandem("tokenize --tokenizer " + TokenizerJson() + " --text \"$(printf 'ab\\377')\"", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("byte offset 2"));
}

// --stream: one JSON line per id whose deltas concatenate to the plain detokenize output (a
// character whose bytes span several ids comes whole, later), then the Finish() line; ids from
// --ids or from stdin.
TEST(TokenizeCliTest, DetokenizeStreamPrintsOneDeltaPerId) {
  const std::string text = "Hi \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb w\xc3\xb6rld";
  const Result ids = Tandem("tokenize --tokenizer " + TokenizerJson() + " --text '" + text + "'");
  ASSERT_EQ(ids.exit_code, 0);
  const std::string list = ids.output.substr(0, ids.output.size() - 1);
  const size_t count = std::count(list.begin(), list.end(), ',') + 1;
  std::string spaced = list;
  std::replace(spaced.begin(), spaced.end(), ',', ' ');
  const std::string from_stdin = FreshDir("stream_ids");
  { std::ofstream(from_stdin) << spaced << "\n"; }
  for (const std::string& args : {"--ids " + list, "< " + from_stdin}) {
    const Result r = Tandem("detokenize --stream --tokenizer " + TokenizerJson() + " " + args);
    ASSERT_EQ(r.exit_code, 0) << args;
    std::istringstream lines(r.output);
    std::vector<std::string> all;
    for (std::string line; std::getline(lines, line);) all.push_back(line);
    ASSERT_EQ(all.size(), count + 1) << r.output;
    std::string joined;
    size_t empty = 0;
    for (size_t k = 0; k < all.size(); ++k) {
      const Json j = Json::parse(all[k]);
      EXPECT_EQ(j["id"].is_null(), k == count) << all[k];
      const std::string delta = j["delta"].get<std::string>();
      empty += delta.empty();
      joined += delta;
    }
    EXPECT_EQ(joined, text) << args;
    EXPECT_GT(empty, 0u) << "the emoji's bytes span several ids: some deltas wait for the rest";
  }
  const Result bad =
      Tandem("detokenize --stream --tokenizer " + TokenizerJson() + " --ids 1,99999", true);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("99999"));
}

}  // namespace
}  // namespace tandem::cli::testing
