// `tandem version` and the self-describing --help of serve and worker.
#include <regex>
#include <string>

#include "tests/cli/cli_test_util.h"

namespace tandem::cli::testing {
namespace {

TEST(VersionCliTest, PrintsVersionCommitBuildTypeAndBackends) {
  const Result r = Tandem("version");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(version: \d+\.\d+\.\d+\n)"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(commit: ([0-9a-f]{12}|unknown)\n)")))
      << r.output;
  EXPECT_THAT(r.output, HasSubstr("build_type: "));
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(backends: cpu(,[a-z]+)*\n)"))) << r.output;
  EXPECT_EQ(Tandem("version --bogus x").exit_code, 2);
}

// Every option the command accepts has a line of its own with its default.
void ExpectEveryFlagDocumented(const std::string& command, const std::vector<std::string>& flags) {
  const Result r = Tandem(command + " --help");
  ASSERT_EQ(r.exit_code, 0);
  for (const std::string& flag : flags) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m, std::regex("\n  --" + flag + "[ \n][^\n]*")))
        << command << " --help lacks --" << flag << ":\n"
        << r.output;
    // The line (or its continuation) names a default.
    const size_t at = r.output.find("\n  --" + flag);
    const size_t end = r.output.find("\n  --", at + 3);
    EXPECT_THAT(r.output.substr(at, end - at), HasSubstr("default")) << flag;
  }
}

TEST(HelpCliTest, ServeListsEveryFlagWithItsDefault) {
  ExpectEveryFlagDocumented("serve", {"model",
                                      "tp",
                                      "pp",
                                      "host",
                                      "port",
                                      "slots",
                                      "blocks",
                                      "block-size",
                                      "max-tokens-per-step",
                                      "max-queued-requests",
                                      "max-queued-prompt-tokens",
                                      "max-new-tokens",
                                      "max-receive-bytes",
                                      "micro-batches",
                                      "collective",
                                      "workers",
                                      "rendezvous-host",
                                      "start-timeout",
                                      "drain-timeout",
                                      "metrics-port",
                                      "worker-metrics-port-base",
                                      "log-format",
                                      "log-prompts"});
}

TEST(HelpCliTest, WorkerListsEveryFlagWithItsDefault) {
  ExpectEveryFlagDocumented("worker", {"listen", "port-file", "parent-pid", "metrics-port",
                                       "threads", "log-format", "local-ranks"});
}

TEST(HelpCliTest, ModelCommandsListEveryFlagWithItsDefault) {
  ExpectEveryFlagDocumented("logits", {"model", "tokens", "out", "reference-kernels", "tp", "pp",
                                       "stage-layers", "collective", "backend"});
  ExpectEveryFlagDocumented("inspect", {"json", "tp", "pp", "partition"});
  ExpectEveryFlagDocumented(
      "perplexity", {"model", "text-file", "window", "dtype", "json", "reference-kernels", "tp",
                     "pp", "stage-layers", "collective", "backend"});
  ExpectEveryFlagDocumented("make-tiny-model",
                            {"seed", "dtype", "shards", "preset", "vocab-size", "tokenizer"});
  ExpectEveryFlagDocumented("generate", {"model",
                                         "tokens",
                                         "max-new-tokens",
                                         "temperature",
                                         "top-k",
                                         "top-p",
                                         "min-p",
                                         "seed",
                                         "ignore-eos",
                                         "reference-kernels",
                                         "tp",
                                         "stage-layers",
                                         "collective",
                                         "backend",
                                         "server",
                                         "stream",
                                         "min-new-tokens",
                                         "stop",
                                         "repetition-penalty",
                                         "logprobs",
                                         "priority",
                                         "request-id",
                                         "timeout-ms",
                                         "ids"});
}

TEST(HelpCliTest, BadObservabilityOptionsFailNamingTheOption) {
  Result r = Tandem("serve --log-format xml", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--log-format: 'xml'"));
  r = Tandem("serve --metrics-port 70000", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--metrics-port 70000"));
  r = Tandem("worker --threads 0", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--threads 0"));
}

}  // namespace
}  // namespace tandem::cli::testing
