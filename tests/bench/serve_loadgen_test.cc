// serve_loadgen (bench/serve_loadgen.cc): its flag checks, and one small shared-prefix run
// against a real `tandem serve` (tp=1 pp=1, the tiny model) whose JSON must account for every
// prompt token. No timing is asserted.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/tiny_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_test_util.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using ::tandem::cli::testing::Result;

Result Loadgen(const std::string& args) {
  return ::tandem::cli::testing::RunCommand(std::string(TANDEM_BINARY_DIR) + "/bin/serve_loadgen " +
                                            args + " 2>&1");
}

TEST(ServeLoadgenFlagsTest, HelpNamesTheSharedPrefix) {
  const Result r = Loadgen("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--shared-prefix N"));
}

TEST(ServeLoadgenFlagsTest, RejectsBadSharedPrefixes) {
  // Each fails in the flag checks, before any server is started.
  const struct {
    const char* args;
    const char* message;
  } cases[] = {
      {"--shared-prefix -1", "--shared-prefix: -1 is below 0"},
      {"--shared-prefix 1k", "--shared-prefix: '1k' is not an integer"},
      {"--shared-prefix=", "--shared-prefix: '' is not an integer"},
      {"--shared-prefix 99999999999", "--shared-prefix: 99999999999 is above 16777216"},
      {"--shared-prefix 8 --shared-prefix 8", "--shared-prefix is given twice"},
      {"--shared-prefix", "--shared-prefix needs a value"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const Result r = Loadgen(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(std::string("serve_loadgen: ") + c.message));
  }
}

TEST(ServeLoadgenRunTest, SharedPrefixRunAccountsForEveryPromptToken) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("serve_loadgen_test_" + std::to_string(getpid()));
  fs::remove_all(dir);
  tandem::core::TinyModelOptions options;
  options.tokenizer_json =
      std::string(TANDEM_SOURCE_DIR) + "/tests/testdata/tokenizer/tokenizer.json";
  ASSERT_TRUE(tandem::core::WriteTinyModel(options, (dir / "model").string()).ok());
  const std::string out = (dir / "run.json").string();
  // A server with more context than the tiny model's 1024 positions would be needed for the
  // benchmark's 1,056-token prompts; 48 + 8 exercises the same code.
  const Result r =
      Loadgen("--serve-args \"--tp 1 --pp 1 --slots 4 --model " + (dir / "model").string() +
              "\" --shared-prefix 48 --prompt-len 8 --max-new-tokens 2 "
              "--requests 4 --warmup 1 --concurrency 2 --seed 3 --out " +
              out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("(+ 48 shared)"));
  std::ifstream in(out);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  fs::remove_all(dir);
  ASSERT_TRUE(j.is_object()) << "no JSON in " << out << "\n" << r.output;
  EXPECT_EQ(j["config"]["shared_prefix"], 48);
  const auto& res = j["results"];
  EXPECT_EQ(res["ok"], 4);
  EXPECT_EQ(res["prompt_tokens"], 4 * (48 + 8));
  const int64_t cached = res["cached_tokens"];
  EXPECT_GE(cached, 0);
  // The prompts share 48 tokens (3 blocks of 16) and then differ: an honest cache reuses no more.
  EXPECT_LE(cached, 4 * 48);
  EXPECT_EQ(res["cached_tokens_per_request"]["n"], 4);
  const double share = res["cached_share"];
  EXPECT_NEAR(share, static_cast<double>(cached) / (4 * (48 + 8)), 1e-4);
  // With a prefix cache in the server, its counter grew by exactly what the responses reported
  // (nothing was preempted: 4 slots, 2 clients).
  ASSERT_TRUE(j.contains("prefix_cache"));
  if (!j["prefix_cache"].is_null() && !j["prefix_cache"]["measured"].is_null() &&
      res["server_preemptions"] == 0) {
    EXPECT_EQ(j["prefix_cache"]["measured"]["cached_tokens"], cached);
  }
}

}  // namespace
