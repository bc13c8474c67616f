#include "core/logging.h"

#include <regex>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem::core {
namespace {

class LoggingTest : public ::testing::Test {
 protected:
  void TearDown() override {
    SetLogFormat(LogFormat::kText);
    SetLogContext("");
    SetLogRank(-1);
    SetLogGroup("");
  }
};

TEST_F(LoggingTest, TextLinesHaveAUtcIso8601TimestampLevelAndIdentity) {
  SetLogContext("worker");
  SetLogRank(3);
  SetLogGroup("g1");
  ::testing::internal::CaptureStderr();
  TANDEM_LOG(WARNING) << "hello " << 42;
  const std::string line = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(std::regex_match(
      line, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z W worker rank=3 group=g1 )"
                       R"(logging_test\.cc:\d+\] hello 42\n)")))
      << line;
}

TEST_F(LoggingTest, JsonLinesParseAndCarryFields) {
  SetLogFormat(LogFormat::kJson);
  SetLogContext("coordinator");
  ::testing::internal::CaptureStderr();
  LogEvent(LogLevel::kInfo, __FILE__, __LINE__, "request \"finished\"\n",
           {{"request_id", "r\\1"}, {"tokens", "7", false}, {"ctl", std::string("a\x01z")}});
  TANDEM_LOG(ERROR) << "plain";
  const std::string out = ::testing::internal::GetCapturedStderr();
  const size_t nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  const auto j = nlohmann::json::parse(out.substr(0, nl));
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["component"], "coordinator");
  EXPECT_FALSE(j.contains("rank"));
  EXPECT_EQ(j["msg"], "request \"finished\"\n");
  EXPECT_EQ(j["request_id"], "r\\1");
  EXPECT_EQ(j["tokens"], 7);
  EXPECT_EQ(j["ctl"], std::string("a\x01z"));
  EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
  const auto j2 = nlohmann::json::parse(out.substr(nl + 1));
  EXPECT_EQ(j2["level"], "error");
  EXPECT_EQ(j2["msg"], "plain");
}

TEST_F(LoggingTest, TextFieldsAreQuotedWhenNeeded) {
  ::testing::internal::CaptureStderr();
  LogEvent(LogLevel::kInfo, __FILE__, __LINE__, "done", {{"a", "x"}, {"b", "two words"}});
  const std::string line = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(line.find("] done a=x b=\"two words\"\n"), std::string::npos) << line;
}

TEST_F(LoggingTest, ParsesFormats) {
  LogFormat f;
  EXPECT_TRUE(ParseLogFormat("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_TRUE(ParseLogFormat("text", &f));
  EXPECT_EQ(f, LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("xml", &f));
}

}  // namespace
}  // namespace tandem::core
