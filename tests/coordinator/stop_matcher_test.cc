#include "coordinator/stop_matcher.h"

#include <random>

#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

// Reference: scan the whole text; the stop completing first wins, the longest at the same end.
std::string Reference(const std::string& text, const std::vector<std::string>& stops, bool include,
                      bool* matched) {
  size_t best = std::string::npos, len = 0;
  for (size_t end = 1; end <= text.size() && best == std::string::npos; ++end) {
    for (const auto& s : stops) {
      if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0 && s.size() > len) {
        best = end - s.size();
        len = s.size();
      }
    }
  }
  *matched = best != std::string::npos;
  if (!*matched) return text;
  return text.substr(0, include ? best + len : best);
}

TEST(StopMatcherTest, RandomSplitsAcrossTokenBoundariesMatchTheWholeText) {
  std::mt19937 rng(std::random_device{}());
  const std::string alphabet = "ab c";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
    std::vector<std::string> stops;
    const int k = static_cast<int>(rng() % 3);
    for (int j = 0; j < k; ++j) {
      std::string s;
      const int m = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < m; ++i) s += alphabet[rng() % alphabet.size()];
      stops.push_back(s);
    }
    const bool include = rng() % 2 == 0;
    StopMatcher matcher(stops, include);
    std::string out;
    size_t pos = 0;
    while (pos < text.size() && !matcher.matched()) {
      const size_t len = 1 + rng() % 4;
      out += matcher.Append(text.substr(pos, len));
      pos += len;
    }
    out += matcher.Finish();
    bool matched = false;
    const std::string want = Reference(text, stops, include, &matched);
    ASSERT_EQ(out, want) << "text '" << text << "' trial " << trial;
    ASSERT_EQ(matcher.matched(), matched) << "text '" << text << "'";
  }
}

TEST(StopMatcherTest, HoldsBackOnlyAPossibleStopPrefix) {
  StopMatcher m({"END"}, false);
  EXPECT_EQ(m.Append("hello E"), "hello ");
  EXPECT_EQ(m.Append("x"), "Ex");
  EXPECT_EQ(m.Append(" EN"), " ");
  EXPECT_EQ(m.Append("D tail"), "");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.matched_stop(), "END");
  EXPECT_EQ(m.Append("more"), "");
  EXPECT_EQ(m.Finish(), "");
}

TEST(StopMatcherTest, NoStopsPassesEverythingThrough) {
  StopMatcher m({}, false);
  EXPECT_EQ(m.Append("abc"), "abc");
  EXPECT_EQ(m.Finish(), "");
  EXPECT_FALSE(m.matched());
}

}  // namespace
}  // namespace tandem::coordinator
