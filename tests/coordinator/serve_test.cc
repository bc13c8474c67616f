// End-to-end: a real `tandem serve` (coordinator + tp=2 x pp=2 worker processes of the tiny model)
// on loopback gRPC. The server runs in its own process group, killed and reaped at the end.
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tests/coordinator/serve_fixture.h"

namespace tandem::coordinator {
namespace {

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> args = {"--model",
                                     F32Model(),
                                     "--slots",
                                     "16",
                                     "--blocks",
                                     "256",
                                     "--block-size",
                                     "8",
                                     "--max-queued-requests",
                                     "200",
                                     "--max-tokens-per-step",
                                     "64"};
    // Extra `tandem serve` flags for these tests, e.g. TANDEM_TEST_SERVE_ARGS="--collective ucx".
    if (const char* extra = std::getenv("TANDEM_TEST_SERVE_ARGS"); extra != nullptr) {
      std::istringstream words(extra);
      for (std::string w; words >> w;) args.push_back(w);
    }
    server_ = new ServeProcess(args);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_->port(), 0) << "tandem serve did not start";
    channel_ = ::grpc::CreateChannel(server_->address(), ::grpc::InsecureChannelCredentials());
    stub_ = v1::Tandem::NewStub(channel_);
  }
  static ServeProcess* server_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<v1::Tandem::Stub> stub_;
};
ServeProcess* ServeTest::server_ = nullptr;

TEST_F(ServeTest, ConcurrentStreamsEqualEachAlone) {
  std::mt19937 rng(std::random_device{}());
  const int vocab = static_cast<int>(Info(*stub_).vocab_size());
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < 64; ++i) {
    std::vector<int32_t> prompt(1 + rng() % 40);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % vocab);
    reqs.push_back(Tokens(prompt, 1 + static_cast<int>(rng() % 12)));
  }
  std::vector<Result> together(reqs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i) {
    threads.emplace_back([&, i] { together[i] = Stream(*stub_, reqs[i]); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < reqs.size(); i += 8) {  // a sample run alone (time)
    const Result alone = Stream(*stub_, reqs[i]);
    ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].ids, alone.ids) << "request " << i;
    EXPECT_EQ(static_cast<int>(alone.ids.size()), reqs[i].stopping().max_new_tokens());
    EXPECT_EQ(alone.reason, v1::FINISH_REASON_LENGTH);
  }
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_TRUE(together[i].status.ok()) << i;
  ExpectPoolsFull(*stub_);
}

TEST_F(ServeTest, ValidationFailuresNameTheField) {
  struct Case {
    const char* field;
    v1::GenerateRequest req;
  };
  std::vector<Case> cases;
  cases.push_back({"input", v1::GenerateRequest()});
  {
    auto r = Tokens({1, 2}, 4);
    r.mutable_tokens()->set_ids(1, 1 << 30);
    cases.push_back({"tokens.ids[1]", r});
  }
  {
    auto r = Tokens({1}, 4);
    r.mutable_sampling()->set_top_p(0);
    cases.push_back({"sampling.top_p", r});
  }
  {
    auto r = Tokens({1}, 4);
    r.mutable_sampling()->set_temperature(-1);
    cases.push_back({"sampling.temperature", r});
  }
  {
    auto r = Tokens({1}, 4);
    r.mutable_stopping()->set_min_new_tokens(5);
    cases.push_back({"stopping.min_new_tokens", r});
  }
  // (Invalid UTF-8 cannot be sent through the C++ client: proto3 refuses to serialize it;
  // isolation_test sends raw bytes for every string field.)
  {
    auto r = Tokens({1}, 4);
    r.mutable_stopping()->add_stop("");
    cases.push_back({"stopping.stop[0]", r});
  }
  const auto before = Info(*stub_);
  for (const Case& c : cases) {
    const Result r = Stream(*stub_, c.req);
    EXPECT_EQ(r.status.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_EQ(r.status.error_message().rfind(std::string(c.field) + ":", 0), 0u)
        << c.field << ": " << r.status.error_message();
  }
  // An oversized message is refused by gRPC itself.
  v1::GenerateRequest big;
  big.set_text(std::string(8 << 20, 'a'));
  EXPECT_EQ(Stream(*stub_, big).status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Info(*stub_).capacities().DebugString(), before.capacities().DebugString());
  // Nothing was accepted and no step ran: no worker saw any of these requests.
  EXPECT_EQ(Info(*stub_).ledger().accepted(), before.ledger().accepted());
  EXPECT_EQ(Info(*stub_).ledger().steps(), before.ledger().steps());
}

TEST_F(ServeTest, CancelAbortAndDeadlinesFreeTheState) {
  // Client cancellation mid-stream.
  for (int i = 0; i < 8; ++i) {
    ::grpc::ClientContext ctx;
    auto reader = stub_->GenerateStream(&ctx, Tokens({1, 2, 3}, 200));
    v1::GenerateStreamResponse msg;
    ASSERT_TRUE(reader->Read(&msg));
    ctx.TryCancel();
    while (reader->Read(&msg)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), ::grpc::StatusCode::CANCELLED);
  }
  ExpectPoolsFull(*stub_);
  // Abort by request id.
  auto req = Tokens({4, 5, 6}, 200);
  req.set_request_id("abort-me");
  Result aborted;
  std::thread t([&] { aborted = Stream(*stub_, req); });
  v1::AbortResponse ar;
  for (int i = 0; i < 500 && ar.aborted_size() == 0; ++i) {
    ::grpc::ClientContext ctx;
    v1::AbortRequest a;
    a.add_request_ids("abort-me");
    ar.Clear();
    ASSERT_TRUE(stub_->Abort(&ctx, a, &ar).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  t.join();
  EXPECT_EQ(aborted.status.error_code(), ::grpc::StatusCode::CANCELLED);
  // Deadline while running.
  const Result late = Stream(*stub_, Tokens({7, 8}, 1000), 300);
  EXPECT_EQ(late.status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED);
  // Per-request time limit.
  auto limited = Tokens({7, 8}, 1000);
  limited.set_time_limit_ms(200);
  EXPECT_EQ(Stream(*stub_, limited).status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED);
  ExpectPoolsFull(*stub_);
}

// The ledger: every accepted request has ended, each with exactly one terminal status.
void ExpectLedgerClosed(v1::Tandem::Stub& stub) {
  v1::Ledger ledger;
  for (int i = 0; i < 200; ++i) {
    ledger = Info(stub).ledger();
    if (ledger.live() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ledger.live(), 0) << ledger.DebugString();
  EXPECT_EQ(ledger.accepted(), ledger.terminated()) << ledger.DebugString();
  int64_t by_code = 0;
  for (const auto& [code, n] : ledger.terminated_by_code()) by_code += n;
  EXPECT_EQ(by_code, ledger.terminated()) << ledger.DebugString();
}

TEST_F(ServeTest, ThousandRandomCancelsLeaveThePoolsFull) {
  std::mt19937 seed_rng(std::random_device{}());
  const int vocab = static_cast<int>(Info(*stub_).vocab_size());
  const v1::Ledger before = Info(*stub_).ledger();
  constexpr int kRequests = 1000;
  constexpr int kThreads = 24;
  std::atomic<int> next{0}, cancelled{0}, completed{0}, aborted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, seed = seed_rng()] {
      std::mt19937 rng(seed);
      for (int i = next++; i < kRequests; i = next++) {
        std::vector<int32_t> prompt(1 + rng() % 24);
        for (auto& tok : prompt) tok = static_cast<int32_t>(rng() % vocab);
        auto req = Tokens(prompt, 1 + static_cast<int>(rng() % 40));
        req.set_request_id("c" + std::to_string(i));
        ::grpc::ClientContext ctx;
        ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
        auto reader = stub_->GenerateStream(&ctx, req);
        // Cancel after 0..4 messages (0: possibly still queued), by the client or by Abort.
        const int after = static_cast<int>(rng() % 5);
        const bool by_abort = rng() % 3 == 0;
        v1::GenerateStreamResponse msg;
        bool open = true;
        for (int m = 0; m < after && open; ++m) open = reader->Read(&msg);
        if (open) {
          if (by_abort) {
            ::grpc::ClientContext actx;
            v1::AbortRequest a;
            a.add_request_ids(req.request_id());
            v1::AbortResponse ar;
            EXPECT_TRUE(stub_->Abort(&actx, a, &ar).ok());
          } else {
            ctx.TryCancel();
          }
        }
        while (reader->Read(&msg)) {
        }
        const ::grpc::Status st = reader->Finish();
        if (st.ok()) {
          ++completed;  // it ended before the cancel arrived
        } else {
          EXPECT_EQ(st.error_code(), ::grpc::StatusCode::CANCELLED) << st.error_message();
          ++(by_abort ? aborted : cancelled);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(cancelled.load(), 100);
  EXPECT_GT(aborted.load(), 50);
  ExpectPoolsFull(*stub_);
  ExpectLedgerClosed(*stub_);
  const v1::Ledger after = Info(*stub_).ledger();
  // A call cancelled before it reached the server was never accepted.
  EXPECT_LE(after.accepted() - before.accepted(), kRequests);
  EXPECT_GE(after.accepted() - before.accepted(), kRequests / 2);
  // The server still serves correctly afterwards.
  const Result r = Stream(*stub_, Tokens({3, 1, 4, 1, 5}, 6));
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids.size(), 6u);
}

// Streams held open by the test: a request that is queued or running until cancelled.
struct OpenStream {
  ::grpc::ClientContext ctx;
  std::unique_ptr<::grpc::ClientReader<v1::GenerateStreamResponse>> reader;
  OpenStream(v1::Tandem::Stub& stub, const v1::GenerateRequest& req, int timeout_ms = 60000) {
    ctx.set_deadline(Clock::now() + std::chrono::milliseconds(timeout_ms));
    reader = stub.GenerateStream(&ctx, req);
  }
  ::grpc::Status CancelAndFinish() {
    ctx.TryCancel();
    v1::GenerateStreamResponse msg;
    while (reader->Read(&msg)) {
    }
    return reader->Finish();
  }
};

void WaitFor(v1::Tandem::Stub& stub, int64_t running, int64_t queued) {
  v1::Capacities c;
  for (int i = 0; i < 500; ++i) {
    c = Info(stub).capacities();
    if (c.running_requests() == running && c.queued_requests() == queued) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL() << "expected " << running << " running and " << queued << " queued: " << c.DebugString();
}

TEST(ServeOverloadTest, FullQueueIsResourceExhaustedAtOnceAndQueuedDeadlinesExpire) {
  // One slot, a queue of 3 requests or 64 prompt tokens. Gloo's slower steps keep the running
  // request (1,000 tokens) going for tens of seconds, far longer than this test needs the slot.
  ServeProcess server({"--slots", "1", "--max-queued-requests", "3", "--max-queued-prompt-tokens",
                       "64", "--collective", "gloo"});
  ASSERT_NE(server.port(), 0);
  auto stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
  OpenStream running(*stub, Tokens({1, 2, 3}, 1000));
  v1::GenerateStreamResponse msg;
  ASSERT_TRUE(running.reader->Read(&msg));  // it holds the only slot now
  std::vector<std::unique_ptr<OpenStream>> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(
        std::make_unique<OpenStream>(*stub, Tokens({4, 5, static_cast<int32_t>(i)}, 8)));
  }
  WaitFor(*stub, 1, 3);
  // By request count.
  auto t0 = Clock::now();
  Result r = Stream(*stub, Tokens({9}, 4));
  EXPECT_EQ(r.status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED)
      << r.status.error_message();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  // Unary too.
  {
    ::grpc::ClientContext ctx;
    v1::GenerateResponse resp;
    EXPECT_EQ(stub->Generate(&ctx, Tokens({9}, 4), &resp).error_code(),
              ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // By queued prompt tokens: free one queue place, then send a prompt over the token budget.
  EXPECT_EQ(queued.back()->CancelAndFinish().error_code(), ::grpc::StatusCode::CANCELLED);
  queued.pop_back();
  WaitFor(*stub, 1, 2);
  t0 = Clock::now();
  r = Stream(*stub, Tokens(std::vector<int32_t>(60, 7), 4));
  EXPECT_EQ(r.status.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED)
      << r.status.error_message();
  EXPECT_NE(r.status.error_message().find("prompt tokens"), std::string::npos)
      << r.status.error_message();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  // A queued request's deadline expires while it waits.
  t0 = Clock::now();
  r = Stream(*stub, Tokens({8, 8}, 4), 300);
  EXPECT_EQ(r.status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(r.ids.empty());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  WaitFor(*stub, 1, 2);  // the expired request has left the queue
  auto limited = Tokens({8, 9}, 4);
  limited.set_time_limit_ms(200);
  r = Stream(*stub, limited);
  EXPECT_EQ(r.status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED);
  // Everything ends; the pools are full; the ledger is closed.
  for (auto& q : queued)
    EXPECT_EQ(q->CancelAndFinish().error_code(), ::grpc::StatusCode::CANCELLED);
  EXPECT_EQ(running.CancelAndFinish().error_code(), ::grpc::StatusCode::CANCELLED);
  ExpectPoolsFull(*stub);
  ExpectLedgerClosed(*stub);
  const v1::Ledger ledger = Info(*stub).ledger();
  auto count = [&](const std::string& code) {
    auto it = ledger.terminated_by_code().find(code);
    return it == ledger.terminated_by_code().end() ? int64_t{0} : it->second;
  };
  // The queued request's gRPC deadline and the time limit are DEADLINE_EXCEEDED (a gRPC deadline
  // also cancels the call's context: it must not be counted as a cancellation); the rest were
  // cancelled by their clients.
  EXPECT_EQ(count("DEADLINE_EXCEEDED"), 2) << ledger.DebugString();
  EXPECT_EQ(count("CANCELLED"), 4) << ledger.DebugString();
  EXPECT_EQ(ledger.accepted(), 6) << ledger.DebugString();
}

TEST(ServePreemptionTest, SmallBlockPoolPreemptsAndTokensEqualTheUnpreemptedRun) {
  // 12 blocks of 8 positions; each request needs 9 blocks, so four at once must preempt.
  ServeProcess server(
      {"--model", F32Model(), "--slots", "8", "--blocks", "12", "--block-size", "8"});
  ASSERT_NE(server.port(), 0);
  auto stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
  std::mt19937 rng(std::random_device{}());
  const int vocab = static_cast<int>(Info(*stub).vocab_size());
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> prompt(10);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % vocab);
    reqs.push_back(Tokens(prompt, 60));
  }
  std::vector<Result> alone;
  for (const auto& req : reqs) alone.push_back(Stream(*stub, req));
  EXPECT_EQ(Info(*stub).ledger().preemptions(), 0);
  std::vector<Result> together(reqs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i) {
    threads.emplace_back([&, i] { together[i] = Stream(*stub, reqs[i]); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(alone[i].status.ok()) << alone[i].status.error_message();
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].ids, alone[i].ids) << "request " << i;
    EXPECT_EQ(together[i].ids.size(), 60u);
  }
  EXPECT_GT(Info(*stub).ledger().preemptions(), 0) << "the pool was never short";
  ExpectPoolsFull(*stub);
  ExpectLedgerClosed(*stub);
}

// Runs the requests on a server of the given layout: all at once, or one after another (so each
// request's steps hold only that request).
std::vector<Result> RunOnLayout(const std::vector<v1::GenerateRequest>& reqs, int tp, int pp,
                                const std::string& model_dir, bool concurrent = true) {
  std::vector<std::string> args = {"--tp", std::to_string(tp), "--pp", std::to_string(pp)};
  if (!model_dir.empty()) args.insert(args.end(), {"--model", model_dir});
  ServeProcess server(args);
  std::vector<Result> results(reqs.size());
  EXPECT_NE(server.port(), 0) << "tp=" << tp << " pp=" << pp;
  if (server.port() == 0) return results;
  auto stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (concurrent) {
      threads.emplace_back([&, i] { results[i] = Stream(*stub, reqs[i]); });
    } else {
      results[i] = Stream(*stub, reqs[i]);
    }
  }
  for (auto& t : threads) t.join();
  for (const Result& r : results) EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  return results;
}

std::vector<v1::GenerateRequest> SampledRequests(std::mt19937& rng) {
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> prompt(1 + rng() % 20);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % 4096);
    auto req = Tokens(prompt, 24);
    auto* s = req.mutable_sampling();
    s->set_temperature(0.7f + 0.1f * static_cast<float>(i % 4));
    s->set_seed(rng());
    if (i % 2 == 0) s->set_top_k(40);
    if (i % 3 == 0) s->set_top_p(0.9f);
    if (i == 1) s->set_min_p(0.05f);
    if (i == 4) s->set_repetition_penalty(1.2f);
    if (i == 5) {
      s->set_presence_penalty(0.5f);
      s->set_frequency_penalty(0.3f);
    }
    req.mutable_logprobs()->set_logprobs(true);
    req.mutable_logprobs()->set_top_logprobs(i % 2 == 0 ? 3 : 0);
    reqs.push_back(req);
  }
  return reqs;
}

void ExpectSameTokens(const std::vector<std::vector<Result>>& by_layout, const char* what) {
  for (size_t l = 1; l < by_layout.size(); ++l) {
    for (size_t i = 0; i < by_layout[0].size(); ++i) {
      EXPECT_EQ(by_layout[l][i].ids, by_layout[0][i].ids)
          << what << ": layout " << l << " request " << i;
      EXPECT_EQ(by_layout[l][i].ids.size(), 24u);
      // Log-probabilities (the sampled token's and the top-N) agree to float rounding: on TP
      // layouts each rank reduces its vocabulary slice and only the summaries are combined.
      const auto& a = by_layout[0][i].logprobs;
      const auto& b = by_layout[l][i].logprobs;
      ASSERT_EQ(a.size(), b.size()) << what << ": layout " << l << " request " << i;
      for (size_t t = 0; t < a.size() && by_layout[l][i].ids == by_layout[0][i].ids; ++t) {
        EXPECT_NEAR(a[t].logprob(), b[t].logprob(), 1e-4) << what << " layout " << l << " " << i;
        ASSERT_EQ(a[t].top_size(), b[t].top_size());
        for (int k = 0; k < a[t].top_size(); ++k) {
          EXPECT_EQ(a[t].top(k).token_id(), b[t].top(k).token_id());
          EXPECT_NEAR(a[t].top(k).logprob(), b[t].top(k).logprob(), 1e-4);
        }
      }
    }
  }
}

// The sampling noise is keyed by (seed, position, token) only, never by rank, batch or step, so
// the same seed gives the same tokens on any layout whose logits are the same. Pipeline stages
// do not change the arithmetic (bf16 too); tensor parallelism changes the order of the f32
// reductions, which an f32 checkpoint keeps below its tolerance but a bf16 checkpoint can round
// to a different bf16 logit (docs/serving.md), so TP layouts are compared on an f32 checkpoint.
TEST(ServeLayoutsTest, SeededSamplingIsTheSameOnEveryLayout) {
  std::mt19937 rng(std::random_device{}());
  const std::vector<v1::GenerateRequest> reqs = SampledRequests(rng);
  // The built-in (bf16) tiny model over pipeline layouts, one request at a time: with bf16 the
  // batch a request shares a step with can round an activation differently (docs/serving.md,
  // "Reproducibility"), and pipeline micro-batching changes who shares a step.
  ExpectSameTokens({RunOnLayout(reqs, 1, 1, "", false), RunOnLayout(reqs, 1, 3, "", false),
                    RunOnLayout(reqs, 1, 2, "", false)},
                   "bf16");
  // An f32 tiny model over tensor- and pipeline-parallel layouts.
  const std::string& f32_dir = F32Model();
  const std::vector<Result> f32_1x1 = RunOnLayout(reqs, 1, 1, f32_dir);
  ExpectSameTokens({f32_1x1, RunOnLayout(reqs, 2, 2, f32_dir), RunOnLayout(reqs, 4, 1, f32_dir)},
                   "f32");
  // The seed matters: another seed gives other tokens (24 tokens sampled at T >= 0.7).
  auto other = reqs;
  for (auto& r : other) r.mutable_sampling()->set_seed(r.sampling().seed() + 1);
  const std::vector<Result> reseeded = RunOnLayout(other, 1, 1, f32_dir);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_NE(reseeded[i].ids, f32_1x1[i].ids) << i;
}

// The group secret the coordinator and its remote workers share (DESIGN.md §8): children
// inherit it through the environment, as from a Kubernetes Secret. Remote workers are
// serve_fixture.h's RemoteWorker (a `tandem worker --listen` process started on its own).
constexpr char kGroupSecret[] = "serve-test-group-secret-0123456789";
void UseTestGroupSecret() { setenv("TANDEM_GROUP_SECRET", kGroupSecret, 1); }

TEST(ServeRemoteWorkersTest, WorkersStartedElsewhereJoinByAddress) {
  std::vector<std::unique_ptr<RemoteWorker>> workers;
  std::string addresses;
  for (int r = 0; r < 4; ++r) {
    workers.push_back(std::make_unique<RemoteWorker>(kGroupSecret, "0.0.0.0"));
    ASSERT_NE(workers.back()->port(), 0) << "worker " << r << " did not start";
    addresses +=
        (r ? "," : "") + std::string("127.0.0.1:") + std::to_string(workers.back()->port());
  }
  std::mt19937 rng(std::random_device{}());
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> prompt(1 + rng() % 30);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % 4096);
    reqs.push_back(Tokens(prompt, 12));
  }
  const auto run = [&](const std::vector<std::string>& args) {
    ServeProcess server(args);
    std::vector<Result> results(reqs.size());
    EXPECT_NE(server.port(), 0);
    if (server.port() == 0) return results;
    auto stub = v1::Tandem::NewStub(
        ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
    EXPECT_EQ(Info(*stub).tp(), 2);
    EXPECT_EQ(Info(*stub).pp(), 2);
    for (size_t i = 0; i < reqs.size(); ++i) results[i] = Stream(*stub, reqs[i]);
    return results;
  };
  const std::vector<Result> joined =
      run({"--model", F32Model(), "--tp", "2", "--pp", "2", "--workers", addresses, "--host",
           "0.0.0.0", "--rendezvous-host", "127.0.0.1"});
  const std::vector<Result> local = run({"--model", F32Model(), "--tp", "2", "--pp", "2"});
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(joined[i].status.ok()) << joined[i].status.error_message();
    EXPECT_EQ(joined[i].ids, local[i].ids) << i;
    EXPECT_EQ(joined[i].ids.size(), 12u);
  }
}

TEST(ServeRemoteWorkersTest, ANewCoordinatorTakesOverTheWorkersOfOneThatDied) {
  RemoteWorker worker(kGroupSecret, "0.0.0.0");
  ASSERT_NE(worker.port(), 0);
  const std::vector<std::string> args = {
      "--model", F32Model(), "--tp",      "1",
      "--pp",    "1",        "--workers", "127.0.0.1:" + std::to_string(worker.port())};
  std::vector<int32_t> first;
  {
    ServeProcess server(args);
    ASSERT_NE(server.port(), 0);
    auto stub = v1::Tandem::NewStub(
        ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
    const Result r = Stream(*stub, Tokens({11, 12, 13}, 8));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    first = r.ids;
    kill(server.pid(), SIGKILL);  // dies without telling the worker
  }
  ServeProcess again(args);
  ASSERT_NE(again.port(), 0) << "the loaded worker refused the new coordinator";
  auto stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(again.address(), ::grpc::InsecureChannelCredentials()));
  const Result r = Stream(*stub, Tokens({11, 12, 13}, 8));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids, first);
}

TEST(ServeRemoteWorkersTest, BadWorkerListsFailWithAReason) {
  UseTestGroupSecret();
  // The wrong number of addresses, and an address where nothing listens.
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tp", "2", "--pp", "1", "--workers", "127.0.0.1:1"}, "--workers: 1 addresses"},
      {{"--tp", "1", "--pp", "1", "--workers", "127.0.0.1"}, "is not host:port"},
      {{"--tp", "1", "--pp", "1", "--workers", "127.0.0.1:1", "--start-timeout", "2"},
       "worker rank 0 at 127.0.0.1:1"}};
  for (const auto& [args, expected] : cases) {
    std::string cmd = std::string(TANDEM_BINARY_DIR) + "/bin/tandem serve --port 0";
    for (const auto& a : args) cmd += " " + a;
    cmd += " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    const int rc = pclose(p);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find(expected), std::string::npos) << out;
  }
}

}  // namespace
// With replay off (--max-replays 0) the requests running when a worker dies end UNAVAILABLE at
// once, naming the failure; the group is rebuilt anyway and serves the next request (with the
// default, they would be replayed: coordinator_failure_test and coordinator_chaos_test).
TEST(ServeWorkerDeathTest, WithReplayOffAKilledWorkerEndsTheRunningRequestsUnavailable) {
  // Gloo's slower steps keep the 600-token streams decoding well past the kill at 500 ms.
  ServeProcess server({"--slots", "8", "--collective", "gloo", "--max-replays", "0"});
  ASSERT_NE(server.port(), 0);
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);
  EXPECT_EQ(HealthStatus(channel), 1);
  const std::vector<pid_t> workers = server.Children();
  ASSERT_EQ(workers.size(), 4u);
  std::vector<Result> results(6);
  std::vector<std::thread> threads;
  std::vector<Clock::time_point> ended(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] = Stream(*stub, Tokens({1, 2, static_cast<int32_t>(i)}, 600), 120000);
      ended[i] = Clock::now();
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // decoding by now
  std::mt19937 rng(std::random_device{}());
  const pid_t victim = workers[rng() % workers.size()];
  const auto killed = Clock::now();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].status.error_code(), ::grpc::StatusCode::UNAVAILABLE)
        << i << ": " << results[i].status.error_message();
    EXPECT_NE(results[i].status.error_message().find("retry budget 0"), std::string::npos)
        << results[i].status.error_message();
    EXPECT_LT(ended[i] - killed, std::chrono::seconds(10));
  }
  // The coordinator keeps running, rebuilds the group and serves again.
  const Result next = Stream(*stub, Tokens({1}, 2), 60000);
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(HealthStatus(channel), 1);
  // The ledger: six UNAVAILABLE, one OK; none is left open.
  ExpectLedgerClosed(*stub);
  const v1::Ledger ledger = Info(*stub).ledger();
  EXPECT_EQ(ledger.accepted(), 7) << ledger.DebugString();
  EXPECT_EQ(ledger.terminated_by_code().count("UNAVAILABLE")
                ? ledger.terminated_by_code().at("UNAVAILABLE")
                : 0,
            6)
      << ledger.DebugString();
  EXPECT_EQ(ledger.failures(), 1);
  EXPECT_EQ(ledger.recoveries(), 1);
  EXPECT_EQ(ledger.replays(), 0);
}

}  // namespace tandem::coordinator
