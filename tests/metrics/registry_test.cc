#include "metrics/registry.h"

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/metrics/exposition_parser.h"

namespace tandem::metrics {
namespace {

using testing::ParseExposition;

TEST(RegistryTest, RendersTheExactTextFormat) {
  Registry r;
  r.Counter("tandem_requests_total", "Requests.", {{"method", "Generate"}, {"code", "OK"}})
      ->Increment(3);
  r.Gauge("tandem_queue_requests", "Queued requests.")->Set(2.5);
  Histogram* h = r.Histogram("tandem_latency_seconds", "Latency.", {0.1, 1.0});
  h->Observe(0.1);  // le is inclusive
  h->Observe(0.5);
  h->Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP tandem_latency_seconds Latency.\n"
            "# TYPE tandem_latency_seconds histogram\n"
            "tandem_latency_seconds_bucket{le=\"0.1\"} 1\n"
            "tandem_latency_seconds_bucket{le=\"1\"} 2\n"
            "tandem_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "tandem_latency_seconds_sum 7.6\n"
            "tandem_latency_seconds_count 3\n"
            "# HELP tandem_queue_requests Queued requests.\n"
            "# TYPE tandem_queue_requests gauge\n"
            "tandem_queue_requests 2.5\n"
            "# HELP tandem_requests_total Requests.\n"
            "# TYPE tandem_requests_total counter\n"
            "tandem_requests_total{code=\"OK\",method=\"Generate\"} 3\n");
}

TEST(RegistryTest, SameNameAndLabelsGiveTheSameMetric) {
  Registry r;
  Counter* a = r.Counter("x_total", "h", {{"k", "v"}});
  EXPECT_EQ(a, r.Counter("x_total", "h", {{"k", "v"}}));
  EXPECT_NE(a, r.Counter("x_total", "h", {{"k", "w"}}));
}

TEST(RegistryTest, EscapesHelpAndLabelValues) {
  EXPECT_EQ(EscapeHelp("a\\b\nc\"d"), "a\\\\b\\nc\"d");
  EXPECT_EQ(EscapeLabelValue("a\\b\nc\"d"), "a\\\\b\\nc\\\"d");
  Registry r;
  r.Counter("odd_total", "line one\nline \\two", {{"v", "q\"uo\\te\nnl"}})->Increment();
  const std::string text = r.Render();
  EXPECT_NE(text.find("# HELP odd_total line one\\nline \\\\two\n"), std::string::npos) << text;
  auto parsed = ParseExposition(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(parsed->Get("odd_total{v=\"q\\\"uo\\\\te\\nnl\"}"), 1.0);
}

TEST(RegistryTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.004), "0.004");
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatValue(NAN), "NaN");
}

TEST(RegistryTest, ValidatesNames) {
  EXPECT_TRUE(IsValidMetricName("tandem_x:y_total"));
  EXPECT_FALSE(IsValidMetricName("1abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("method"));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
}

TEST(RegistryTest, HistogramBucketsAreCumulativeWithLabels) {
  Registry r;
  Histogram* a = r.Histogram("h_seconds", "h", {1, 2, 4}, {{"phase", "embed"}});
  Histogram* b = r.Histogram("h_seconds", "h", {1, 2, 4}, {{"phase", "layers"}});
  for (double v : {0.5, 1.5, 1.5, 3.0, 9.0}) a->Observe(v);
  b->Observe(2);
  auto p = ParseExposition(r.Render());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->Get("h_seconds_bucket{phase=\"embed\",le=\"1\"}"), 1);
  EXPECT_EQ(p->Get("h_seconds_bucket{phase=\"embed\",le=\"2\"}"), 3);
  EXPECT_EQ(p->Get("h_seconds_bucket{phase=\"embed\",le=\"4\"}"), 4);
  EXPECT_EQ(p->Get("h_seconds_bucket{phase=\"embed\",le=\"+Inf\"}"), 5);
  EXPECT_EQ(p->Get("h_seconds_count{phase=\"embed\"}"), 5);
  EXPECT_DOUBLE_EQ(p->Get("h_seconds_sum{phase=\"embed\"}"), 15.5);
  EXPECT_EQ(p->Get("h_seconds_bucket{phase=\"layers\",le=\"2\"}"), 1);
  EXPECT_EQ(p->Get("h_seconds_bucket{phase=\"layers\",le=\"1\"}"), 0);
}

TEST(RegistryTest, CallbacksAndCollectorsRunAtRender) {
  Registry r;
  int calls = 0;
  Gauge* g = r.Gauge("refreshed", "h");
  r.AddCollector([&] { g->Set(++calls); });
  r.Callback("pulled_total", "h", MetricType::kCounter, {{"k", "v"}}, [] { return 42.0; });
  auto p = ParseExposition(r.Render());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->Get("refreshed"), 1);
  EXPECT_EQ(p->Get("pulled_total{k=\"v\"}"), 42);
  p = ParseExposition(r.Render());
  EXPECT_EQ(p->Get("refreshed"), 2);
}

TEST(RegistryTest, ConcurrentUpdatesAreExact) {
  Registry r;
  Counter* c = r.Counter("c_total", "h");
  Histogram* h = r.Histogram("h", "h", LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Increment();
        h->Observe(0.003);
      }
    });
  }
  std::string mid = r.Render();  // renders while others write
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->value(), 40000);
  const Histogram::Snapshot s = h->Read();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_NEAR(s.sum, 120.0, 1e-6);
  EXPECT_TRUE(ParseExposition(mid).ok());
}

TEST(RegistryTest, BucketLayouts) {
  EXPECT_EQ(ExponentialBuckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(LinearBuckets(0, 5, 3), (std::vector<double>{0, 5, 10}));
  EXPECT_EQ(LatencyBuckets().front(), 0.001);
  EXPECT_GT(LatencyBuckets().back(), 60.0);
}

// The parser used by the end-to-end tests rejects what Prometheus rejects.
TEST(ExpositionParserTest, RejectsMalformedText) {
  const char* bad[] = {
      "x 1",                                                       // no final newline
      "x 1\n",                                                     // no TYPE
      "# TYPE x counter\nx -1\n",                                  // negative counter
      "# TYPE x gauge\nx{a=\"b\\q\"} 1\n",                         // unknown escape
      "# TYPE x gauge\nx{a=\"b\",a=\"c\"} 1\n",                    // duplicate label
      "# TYPE x gauge\nx{1a=\"b\"} 1\n",                           // bad label name
      "# TYPE x gauge\nx abc\n",                                   // bad value
      "# TYPE x gauge\nx 1\nx 2\n",                                // duplicate series
      "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"1\"} 1\n",  // split family
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",  // no +Inf
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
      "# TYPE x foo\nx 1\n",
      "# HELP x a\\tb\n# TYPE x gauge\nx 1\n",  // bad HELP escape
  };
  for (const char* text : bad) {
    EXPECT_FALSE(ParseExposition(text).ok()) << text;
  }
  auto ok = ParseExposition(
      "# HELP x a\\nb\n# TYPE x gauge\nx{a=\"1\"} NaN\nx{a=\"2\"} +Inf 1700000000\n# a comment\n");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

}  // namespace
}  // namespace tandem::metrics
