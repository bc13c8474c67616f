// The first load of a real `tandem serve` group (docs/serving.md, "Loading"): the API answers
// before the workers have loaded, as a client, a Kubernetes probe or an operator sees it - health
// NOT_SERVING (for "" and "tandem.v1.Tandem"), GetModelInfo STATE_LOADING with the ranks loaded
// of tp x pp and a reason naming the load, generations UNAVAILABLE naming it, Tokenize working,
// /metrics reading "loading" - and then the same port serves. The load is held back for real:
// one of the two remote workers (`tandem worker --listen`, as pods) is not running yet, so the
// coordinator waits for it, as it does for a pod that starts late. A first load that fails still
// ends `tandem serve` non-zero with the error. Servers run in their own process groups, killed
// and reaped at the end.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "httplib.h"
#include "tests/coordinator/serve_fixture.h"

namespace tandem::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr char kSecret[] = "loading-test-group-secret-0123456789";
constexpr char kLoadingMarker[] = "the API answers on ";

// GET `path` from the metrics port the server printed: the status (0 without an answer) and body.
std::pair<int, std::string> HttpGet(const std::string& output, const std::string& path) {
  std::smatch m;
  const std::regex re("metrics on http://[^:]+:([0-9]+)/metrics");
  if (!std::regex_search(output, m, re)) return {0, ""};
  httplib::Client client("127.0.0.1", std::stoi(m[1]));
  client.set_read_timeout(10, 0);
  auto res = client.Get(path);
  return res ? std::make_pair(res->status, res->body) : std::make_pair(0, std::string());
}

std::string Metrics(const std::string& output) { return HttpGet(output, "/metrics").second; }

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(ServeLoadingTest, TheApiAnswersWhileTheGroupLoadsThenTheSamePortServes) {
  RemoteWorker w0(kSecret), w1(kSecret);
  ASSERT_NE(w0.port(), 0);
  ASSERT_NE(w1.port(), 0);
  w1.Kill();  // rank 1's pod has not started yet
  ServeProcess server({"--tp", "1", "--pp", "2", "--workers", w0.address() + "," + w1.address(),
                       "--metrics-port", "0"},
                      /*with_stderr=*/true, kLoadingMarker);
  ASSERT_NE(server.port(), 0) << server.output();
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);

  // Loading: health NOT_SERVING for the server and for the service.
  EXPECT_EQ(HealthStatus(channel), 2);
  EXPECT_EQ(HealthStatus(channel, "tandem.v1.Tandem"), 2);
  // GetModelInfo: the loading state and its progress.
  const v1::GetModelInfoResponse loading = Info(*stub);
  EXPECT_EQ(loading.replica().state(), v1::ReplicaInfo::STATE_LOADING) << loading.DebugString();
  EXPECT_EQ(loading.replica().ranks_total(), 2);
  EXPECT_EQ(loading.replica().ranks_loaded(), 0);
  EXPECT_EQ(loading.replica().bytes_loaded(), 0);
  EXPECT_NE(loading.replica().reason().find("loading the model (0 of 2 ranks loaded"),
            std::string::npos)
      << loading.replica().reason();
  EXPECT_GE(loading.replica().state_seconds(), 0.0);
  EXPECT_EQ(loading.tp(), 1);
  EXPECT_EQ(loading.pp(), 2);
  EXPECT_FALSE(loading.model().empty());
  // Generations: UNAVAILABLE (retryable) naming the load.
  {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
    v1::GenerateResponse response;
    const ::grpc::Status s = stub->Generate(&ctx, Tokens({1, 2, 3}, 4), &response);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_NE(s.error_message().find("loading the model (0 of 2 ranks loaded"), std::string::npos)
        << s.error_message();
  }
  const Result streamed = Stream(*stub, Tokens({1, 2, 3}, 4), 10000);
  EXPECT_EQ(streamed.status.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(streamed.status.error_message().find("loading the model"), std::string::npos)
      << streamed.status.error_message();
  EXPECT_TRUE(streamed.ids.empty());
  {
    // The tokenizer is loaded first: Tokenize works; Detokenize needs the model's vocabulary.
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
    v1::TokenizeRequest request;
    request.set_text("hello world");
    v1::TokenizeResponse response;
    const ::grpc::Status s = stub->Tokenize(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_GT(response.token_ids_size(), 0);
    ::grpc::ClientContext ctx2;
    ctx2.set_deadline(Clock::now() + std::chrono::seconds(10));
    v1::DetokenizeRequest detok;
    detok.add_token_ids(1);
    v1::DetokenizeResponse detok_response;
    EXPECT_EQ(stub->Detokenize(&ctx2, detok, &detok_response).error_code(),
              ::grpc::StatusCode::UNAVAILABLE);
  }
  {
    EXPECT_EQ(HttpGet(server.output(), "/ready").first, 503);
    const std::string m = Metrics(server.output());
    EXPECT_NE(m.find("tandem_replica_state{state=\"loading\"} 1"), std::string::npos) << m;
    EXPECT_NE(m.find("tandem_replica_ranks 2"), std::string::npos) << m;
    EXPECT_NE(m.find("tandem_replica_ranks_loaded 0"), std::string::npos) << m;
    EXPECT_NE(m.find("tandem_rpc_requests_total{code=\"UNAVAILABLE\",method=\"tandem.v1.Tandem/"
                     "Generate\"} 1"),
              std::string::npos)
        << m;
  }
  EXPECT_EQ(server.output().find("listening on"), std::string::npos) << server.output();

  // Rank 1's pod starts: the same server turns SERVING and answers.
  w1.Restart();
  int health = 0;
  for (int i = 0; i < 600 && health != 1; ++i) {
    health = HealthStatus(channel);
    if (health != 1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(health, 1) << server.output();
  EXPECT_EQ(HealthStatus(channel, "tandem.v1.Tandem"), 1);
  const v1::GetModelInfoResponse ready = Info(*stub);
  EXPECT_EQ(ready.replica().state(), v1::ReplicaInfo::STATE_READY) << ready.DebugString();
  EXPECT_EQ(ready.replica().ranks_total(), 0);  // loading fields: STATE_LOADING only
  EXPECT_GT(ready.vocab_size(), 0);
  const Result r = Stream(*stub, Tokens({1, 2, 3}, 4), 30000);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids.size(), 4u);
  {
    EXPECT_EQ(HttpGet(server.output(), "/ready").first, 200);
    const std::string m = Metrics(server.output());
    EXPECT_NE(m.find("tandem_replica_state{state=\"ready\"} 1"), std::string::npos) << m;
    EXPECT_NE(m.find("tandem_replica_ranks_loaded 2"), std::string::npos) << m;
    std::smatch bytes;
    ASSERT_TRUE(std::regex_search(m, bytes, std::regex("tandem_replica_loaded_bytes ([0-9.e+]+)")))
        << m;
    EXPECT_GT(std::stod(bytes[1]), 0.0) << m;  // both ranks' checkpoint reads
  }
  // The "loading" line once, then "listening on" once (scripts wait for the latter).
  const std::string out = server.output();
  EXPECT_EQ(Count(out, kLoadingMarker), 1u) << out;
  EXPECT_EQ(Count(out, "listening on"), 1u) << out;
  EXPECT_LT(out.find(kLoadingMarker), out.find("listening on")) << out;
}

// A first load that fails (a checkpoint without its weights; a worker that never comes) ends the
// server non-zero with the error it names, soon, after the port answered as loading.
TEST(ServeLoadingTest, AFailedFirstLoadExitsNonZeroWithTheError) {
  const std::string broken =
      ::testing::TempDir() + "/loading_test_broken_" + std::to_string(getpid());
  fs::remove_all(broken);
  fs::create_directories(broken);
  for (const auto& e : fs::directory_iterator(F32Model())) {
    if (e.path().extension() != ".safetensors") fs::copy(e.path(), broken / e.path().filename());
  }
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  RemoteWorker absent(kSecret);
  ASSERT_NE(absent.port(), 0);
  absent.Kill();
  const std::vector<Case> cases = {
      {{"--model", broken, "--tp", "1", "--pp", "1"}, "loading worker rank 0"},
      {{"--tp", "1", "--pp", "1", "--workers", absent.address(), "--start-timeout", "2"},
       "worker rank 0 at " + absent.address()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.error);
    ServeProcess server(c.args, /*with_stderr=*/true, kLoadingMarker);
    const int status = server.WaitExit(std::chrono::seconds(60));
    ASSERT_NE(status, -1) << "still running 60 s later: " << server.output();
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_NE(WEXITSTATUS(status), 0) << server.output();
    const std::string out = server.output();
    EXPECT_NE(out.find(kLoadingMarker), std::string::npos) << out;
    EXPECT_NE(out.find(c.error), std::string::npos) << out;
    EXPECT_EQ(out.find("listening on"), std::string::npos) << out;
  }
  fs::remove_all(broken);
}

// SIGTERM (as Kubernetes sends when a pod is deleted) while the group is still loading ends
// `tandem serve` at once, with 128 + SIGTERM, instead of after the load or the grace period.
TEST(ServeLoadingTest, SigtermDuringTheFirstLoadExitsAtOnce) {
  RemoteWorker w0(kSecret), w1(kSecret);
  ASSERT_NE(w0.port(), 0);
  ASSERT_NE(w1.port(), 0);
  w1.Kill();  // the load waits for rank 1 (up to --start-timeout 120)
  ServeProcess server({"--tp", "1", "--pp", "2", "--workers", w0.address() + "," + w1.address(),
                       "--start-timeout", "120"},
                      /*with_stderr=*/true, kLoadingMarker);
  ASSERT_NE(server.port(), 0) << server.output();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto sent = Clock::now();
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  const int status = server.WaitExit(std::chrono::seconds(10));
  ASSERT_NE(status, -1) << "still running 10 s after SIGTERM: " << server.output();
  EXPECT_LT(Clock::now() - sent, std::chrono::seconds(5));
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status) << ": " << server.output();
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM) << server.output();
  EXPECT_NE(server.output().find("a signal during the first load: exiting"), std::string::npos)
      << server.output();
  EXPECT_EQ(server.output().find("listening on"), std::string::npos) << server.output();
}

}  // namespace
}  // namespace tandem::coordinator
