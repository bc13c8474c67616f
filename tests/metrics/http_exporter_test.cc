#include "metrics/http_exporter.h"

#include <atomic>

#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/metrics/exposition_parser.h"

namespace tandem::metrics {
namespace {

TEST(MetricsHttpServerTest, ServesTheRegistryAtSlashMetrics) {
  Registry r;
  Counter* c = r.Counter("served_total", "Served.");
  auto server = MetricsHttpServer::Start("127.0.0.1", 0, &r);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  httplib::Client client("127.0.0.1", (*server)->port());
  c->Increment(7);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto parsed = testing::ParseExposition(res->body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Get("served_total"), 7);
  auto missing = client.Get("/other");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST(MetricsHttpServerTest, SlashReadyFollowsTheReadyFunctionAndIsAbsentWithoutOne) {
  Registry r;
  std::atomic<bool> ready{false};
  auto server = MetricsHttpServer::Start("127.0.0.1", 0, &r, [&ready] { return ready.load(); });
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "not ready\n");
  ready = true;
  res = client.Get("/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ready\n");
  auto plain = MetricsHttpServer::Start("127.0.0.1", 0, &r);
  ASSERT_TRUE(plain.ok()) << plain.status();
  httplib::Client plain_client("127.0.0.1", (*plain)->port());
  res = plain_client.Get("/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(MetricsHttpServerTest, BusyPortIsAnErrorNamingIt) {
  Registry r;
  auto first = MetricsHttpServer::Start("127.0.0.1", 0, &r);
  ASSERT_TRUE(first.ok());
  auto second = MetricsHttpServer::Start("127.0.0.1", (*first)->port(), &r);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(std::to_string((*first)->port())), std::string::npos);
  EXPECT_FALSE(MetricsHttpServer::Start("127.0.0.1", 70000, &r).ok());
}

}  // namespace
}  // namespace tandem::metrics
