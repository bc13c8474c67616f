#include "coordinator/trace_context.h"

#include <regex>
#include <set>

#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

TEST(TraceContextTest, ParsesAValidTraceparent) {
  TraceContext t;
  ASSERT_TRUE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t));
  EXPECT_EQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.span_id, "00f067aa0ba902b7");
  EXPECT_EQ(t.flags, "01");
  // A later version may append fields.
  EXPECT_TRUE(
      ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra", &t));
}

TEST(TraceContextTest, RejectsInvalidTraceparents) {
  TraceContext t;
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",           // no flags
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",        // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",        // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        // version ff
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",        // upper case
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // v00 with more
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
       }) {
    EXPECT_FALSE(ParseTraceparent(bad, &t)) << bad;
  }
}

TEST(TraceContextTest, ContinuesTheCallersTraceWithANewSpan) {
  const TraceContext t = ContinueTrace("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_NE(t.span_id, "00f067aa0ba902b7");
  EXPECT_TRUE(std::regex_match(t.Header(),
                               std::regex("00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01")));
}

TEST(TraceContextTest, StartsANewRandomTraceWithoutAValidHeader) {
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    const TraceContext t = ContinueTrace(i % 2 ? "" : "garbage");
    TraceContext parsed;
    ASSERT_TRUE(ParseTraceparent(t.Header(), &parsed)) << t.Header();
    ids.insert(t.trace_id);
  }
  EXPECT_EQ(ids.size(), 100u);
}

}  // namespace
}  // namespace tandem::coordinator
