// Failure detection and shutdown of a real `tandem serve` group (issue 12): a worker that dies or
// freezes turns the coordinator NOT_SERVING within 2 s with no request sent, and a stream waiting
// on a frozen worker ends UNAVAILABLE promptly. Every server runs in its own process group, killed
// and reaped at the end; a stopped worker is always killed.
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tests/coordinator/serve_fixture.h"

namespace tandem::coordinator {
namespace {

// Kills `pid` (stopped or not) when it goes out of scope; the server reaps it.
class KillAtExit {
 public:
  explicit KillAtExit(pid_t pid) : pid_(pid) {}
  ~KillAtExit() { kill(pid_, SIGKILL); }

 private:
  pid_t pid_;
};

// Polls health until NOT_SERVING (2); how long it took, or `limit` + 1 s if it never did.
std::chrono::duration<double> TimeToNotServing(const std::shared_ptr<::grpc::Channel>& channel,
                                               Clock::time_point since,
                                               std::chrono::seconds limit) {
  while (Clock::now() - since < limit) {
    if (HealthStatus(channel) == 2) return Clock::now() - since;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return limit + std::chrono::seconds(1);
}

// Polls health until SERVING (1); how long it took, or `limit` + 1 s if it never did.
std::chrono::duration<double> TimeToServing(const std::shared_ptr<::grpc::Channel>& channel,
                                            Clock::time_point since, std::chrono::seconds limit) {
  while (Clock::now() - since < limit) {
    if (HealthStatus(channel) == 1) return Clock::now() - since;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return limit + std::chrono::seconds(1);
}

// Recovery budget: 10 s (issue 12) plus the tiny model's load time, which on a loaded 2-core
// machine can itself take a few seconds.
constexpr auto kRecoveryLimit = std::chrono::seconds(25);

v1::GenerateRequest Seeded(const std::vector<int32_t>& ids, int max_new, uint64_t seed) {
  v1::GenerateRequest r = Tokens(ids, max_new);
  r.mutable_sampling()->set_temperature(1.0f);
  r.mutable_sampling()->set_seed(seed);
  r.mutable_logprobs()->set_logprobs(true);
  return r;
}

TEST(ServeFailureTest, WorkerKilledAtIdleIsDetectedAndTheGroupIsRebuilt) {
  ServeProcess server({"--tp", "1", "--pp", "2"});
  ASSERT_NE(server.port(), 0);
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);
  ASSERT_EQ(HealthStatus(channel), 1);
  const std::vector<pid_t> workers = server.Children();
  ASSERT_EQ(workers.size(), 2u);
  const auto killed = Clock::now();
  ASSERT_EQ(kill(workers[0], SIGKILL), 0);
  const auto took = TimeToNotServing(channel, killed, std::chrono::seconds(10));
  std::printf("NOT_SERVING %.3f s after the SIGKILL (idle)\n", took.count());
  EXPECT_LT(took, std::chrono::seconds(2));
  // A request sent while the group is down waits for it instead of failing.
  const Result during = Stream(*stub, Tokens({1, 2}, 3), 60000);
  const auto back = TimeToServing(channel, killed, kRecoveryLimit);
  std::printf("SERVING again %.3f s after the SIGKILL\n", back.count());
  EXPECT_LT(back, kRecoveryLimit);
  EXPECT_TRUE(during.status.ok()) << during.status.error_message();
  EXPECT_EQ(during.ids.size(), 3u);
  const Result after = Stream(*stub, Tokens({1, 2}, 3), 30000);
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  // The same coordinator, new workers.
  EXPECT_EQ(kill(server.pid(), 0), 0);
  const std::vector<pid_t> now = server.Children();
  ASSERT_EQ(now.size(), 2u);
  EXPECT_NE(now[0], workers[0]);
  const v1::GetModelInfoResponse info = Info(*stub);
  EXPECT_EQ(info.ledger().failures(), 1);
  EXPECT_EQ(info.ledger().recoveries(), 1);
  EXPECT_EQ(info.ledger().replays(), 0);
  EXPECT_EQ(info.replica().state(), v1::ReplicaInfo::STATE_READY);
  EXPECT_NE(info.replica().last_failure().find("worker rank 0"), std::string::npos)
      << info.replica().last_failure();
}

// A worker frozen mid-decode: detected within 2 s; a request with time_limit_ms 2000 ends
// DEADLINE_EXCEEDED within 3 s and an Abort ends its stream within 1 s although the step is
// stuck; the group is rebuilt (the frozen worker is ours: killed and started again) and the
// seeded stream that was running resumes where it was: its tokens and logprobs equal an
// uninterrupted run's (f32 checkpoint).
TEST(ServeFailureTest, WorkerFrozenDuringDecodeIsReplacedAndTheStreamContinuesUnchanged) {
  ServeProcess server({"--tp", "1", "--pp", "2", "--model", F32Model()});
  ASSERT_NE(server.port(), 0);
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);
  ASSERT_EQ(HealthStatus(channel), 1);
  const std::vector<pid_t> workers = server.Children();
  ASSERT_EQ(workers.size(), 2u);

  constexpr int kMaxNew = 600;
  const v1::GenerateRequest request = Seeded({1, 2, 3}, kMaxNew, 4242);
  const Result reference = Stream(*stub, request, 120000);
  ASSERT_TRUE(reference.status.ok()) << reference.status.error_message();
  ASSERT_EQ(reference.ids.size(), static_cast<size_t>(kMaxNew));

  std::atomic<int> tokens{0};
  Result replayed;
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(120));
  std::thread client([&] {
    auto reader = stub->GenerateStream(&ctx, request);
    v1::GenerateStreamResponse msg;
    while (reader->Read(&msg)) {
      replayed.ids.insert(replayed.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
      replayed.logprobs.insert(replayed.logprobs.end(), msg.logprobs().begin(),
                               msg.logprobs().end());
      tokens += msg.token_ids_size();
    }
    replayed.status = reader->Finish();
  });
  // A stream to Abort, started before the freeze.
  v1::GenerateRequest abortable = Tokens({4, 5}, 1000);
  abortable.set_request_id("abort-me");
  std::atomic<bool> abort_done{false};
  Result aborted;
  Clock::time_point aborted_at;
  std::thread abort_client([&] {
    aborted = Stream(*stub, abortable, 120000);
    aborted_at = Clock::now();
    abort_done = true;
  });
  for (int i = 0; i < 3000 && tokens.load() < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(tokens.load(), 20) << "the stream did not start decoding";
  const auto stopped = Clock::now();
  ASSERT_EQ(kill(workers[1], SIGSTOP), 0);
  KillAtExit cleanup(workers[1]);
  // While the step is stuck: a request with a 2 s time limit, and an Abort.
  Result limited;
  Clock::time_point limited_at;
  std::thread limited_client([&] {
    v1::GenerateRequest r = Tokens({6, 7}, 1000);
    r.set_time_limit_ms(2000);
    limited = Stream(*stub, r, 60000);
    limited_at = Clock::now();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto abort_sent = Clock::now();
  {
    ::grpc::ClientContext actx;
    actx.set_deadline(Clock::now() + std::chrono::seconds(10));
    v1::AbortRequest areq;
    areq.add_request_ids("abort-me");
    v1::AbortResponse aresp;
    EXPECT_TRUE(stub->Abort(&actx, areq, &aresp).ok());
  }
  const auto took = TimeToNotServing(channel, stopped, std::chrono::seconds(10));
  abort_client.join();
  limited_client.join();
  const auto back = TimeToServing(channel, stopped, kRecoveryLimit);
  client.join();
  std::printf(
      "NOT_SERVING %.3f s after the SIGSTOP; abort took %.3f s; the 2 s request ended %.3f s "
      "after it was sent; SERVING again %.3f s after the SIGSTOP\n",
      took.count(), std::chrono::duration<double>(aborted_at - abort_sent).count(),
      std::chrono::duration<double>(limited_at - stopped).count(), back.count());
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ(aborted.status.error_code(), ::grpc::StatusCode::CANCELLED)
      << aborted.status.error_message();
  EXPECT_LT(aborted_at - abort_sent, std::chrono::seconds(1));
  EXPECT_EQ(limited.status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED)
      << limited.status.error_message();
  EXPECT_LT(limited_at - stopped, std::chrono::seconds(3) + std::chrono::milliseconds(300));
  EXPECT_LT(back, kRecoveryLimit);
  // The interrupted stream: a pause, not an error, and the same tokens.
  ASSERT_TRUE(replayed.status.ok()) << replayed.status.error_message();
  ASSERT_EQ(replayed.ids.size(), reference.ids.size());
  EXPECT_EQ(replayed.ids, reference.ids);
  ASSERT_EQ(replayed.logprobs.size(), reference.logprobs.size());
  for (size_t i = 0; i < reference.logprobs.size(); ++i) {
    EXPECT_NEAR(replayed.logprobs[i].logprob(), reference.logprobs[i].logprob(), 1e-4) << i;
  }
  const v1::GetModelInfoResponse info = Info(*stub);
  EXPECT_EQ(info.ledger().failures(), 1);
  EXPECT_EQ(info.ledger().recoveries(), 1);
  EXPECT_GE(info.ledger().replays(), 1);
  EXPECT_EQ(info.ledger().accepted(), info.ledger().terminated());
  EXPECT_EQ(kill(server.pid(), 0), 0) << "the coordinator must not restart";
}

// SIGTERM: health NOT_SERVING at once, new requests refused "server shutting down", the streams in
// flight run to their full length, then the process exits 0.
TEST(ServeDrainTest, SigtermLetsStreamsInFlightCompleteAndRefusesNewOnes) {
  ServeProcess server({"--tp", "1", "--pp", "2"}, /*with_stderr=*/true);
  ASSERT_NE(server.port(), 0);
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);
  constexpr int kStreams = 3;
  constexpr int kMaxNew = 200;
  std::vector<std::atomic<int>> tokens(kStreams);
  std::vector<Result> results(kStreams);
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] {
      ::grpc::ClientContext ctx;
      ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
      auto reader = stub->GenerateStream(&ctx, Tokens({1, 2, i}, kMaxNew));
      v1::GenerateStreamResponse msg;
      while (reader->Read(&msg)) {
        results[i].ids.insert(results[i].ids.end(), msg.token_ids().begin(), msg.token_ids().end());
        tokens[i] += msg.token_ids_size();
      }
      results[i].status = reader->Finish();
    });
  }
  const auto started = [&] {
    for (auto& t : tokens) {
      if (t.load() == 0) return false;
    }
    return true;
  };
  for (int i = 0; i < 3000 && !started(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto signalled = Clock::now();
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);  // the server only, not its workers
  const auto took = TimeToNotServing(channel, signalled, std::chrono::seconds(5));
  // A request sent now is refused with the reason (or, if the drain already ended, the server is
  // gone: UNAVAILABLE too).
  const Result refused = Stream(*stub, Tokens({5}, 2), 10000);
  for (auto& c : clients) c.join();
  const int status = server.WaitExit(std::chrono::seconds(20));
  std::printf("NOT_SERVING %.3f s after SIGTERM; the server exited %.3f s after it\n", took.count(),
              std::chrono::duration<double>(Clock::now() - signalled).count());
  EXPECT_LT(took, std::chrono::seconds(1));
  EXPECT_EQ(refused.status.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  if (!refused.status.error_message().empty() &&
      refused.status.error_message().find("failed to connect") == std::string::npos) {
    EXPECT_NE(refused.status.error_message().find("server shutting down"), std::string::npos)
        << refused.status.error_message();
    // The refused request's access-log line.
    EXPECT_NE(server.output().find("request refused method=GenerateStream request_id=\"\" "
                                   "trace_id="),
              std::string::npos)
        << server.output();
    EXPECT_NE(server.output().find("status=UNAVAILABLE error=\"server shutting down\""),
              std::string::npos)
        << server.output();
  }
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    EXPECT_EQ(results[i].ids.size(), static_cast<size_t>(kMaxNew)) << i;
  }
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// With --drain-timeout 1 a stream longer than that ends UNAVAILABLE "server shutting down" after
// about a second, and the process exits 0.
TEST(ServeDrainTest, StreamsPastTheDrainTimeoutEndUnavailable) {
  ServeProcess server({"--tp", "1", "--pp", "2", "--drain-timeout", "1"});
  ASSERT_NE(server.port(), 0);
  auto stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
  // A 1000-token stream (the context allows no longer one): ~1.6 s of decoding on a loaded 2-core
  // machine, so the 1 s drain timeout cuts it (a machine fast enough to finish it first skips).
  std::atomic<int> tokens{0};
  ::grpc::Status status;
  Clock::time_point ended;
  std::thread client([&] {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
    auto reader = stub->GenerateStream(&ctx, Tokens({1, 2, 3}, 1000));
    v1::GenerateStreamResponse msg;
    while (reader->Read(&msg)) tokens += msg.token_ids_size();
    status = reader->Finish();
    ended = Clock::now();
  });
  for (int i = 0; i < 3000 && tokens.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto signalled = Clock::now();
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  client.join();
  const int exit_status = server.WaitExit(std::chrono::seconds(20));
  const std::chrono::duration<double> stream_end = ended - signalled;
  std::printf("the stream ended %.3f s after SIGTERM (%d tokens)\n", stream_end.count(),
              tokens.load());
  if (status.ok()) {
    GTEST_SKIP() << "the stream completed within the 1 s drain timeout (" << tokens.load()
                 << " tokens); nothing to cut";
  }
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("server shutting down"), std::string::npos)
      << status.error_message();
  EXPECT_GT(stream_end, std::chrono::milliseconds(900));
  EXPECT_LT(stream_end, std::chrono::seconds(4));
  ASSERT_TRUE(WIFEXITED(exit_status)) << exit_status;
  EXPECT_EQ(WEXITSTATUS(exit_status), 0);
}

// Workers the coordinator did not start (pods): one frozen and thawed, then one killed and
// started again on its address. Each time the same coordinator re-claims the group at a new epoch
// and serves again within the recovery budget, and a stream running across the failure completes.
constexpr char kSecret[] = "failure-test-group-secret-0123456789";

TEST(ServeRecoveryTest, RemoteWorkersFrozenOrRestartedOnTheirAddressAreTakenBack) {
  RemoteWorker w0(kSecret), w1(kSecret);
  ASSERT_NE(w0.port(), 0);
  ASSERT_NE(w1.port(), 0);
  ServeProcess server({"--tp", "1", "--pp", "2", "--workers", w0.address() + "," + w1.address()});
  ASSERT_NE(server.port(), 0);
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);
  ASSERT_EQ(HealthStatus(channel), 1);

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "SIGSTOP then SIGCONT" : "SIGKILL then restart");
    std::atomic<int> tokens{0};
    Result running;
    std::thread client([&] {
      ::grpc::ClientContext ctx;
      ctx.set_deadline(Clock::now() + std::chrono::seconds(120));
      auto reader = stub->GenerateStream(&ctx, Tokens({1, 2, 3 + round}, 400));
      v1::GenerateStreamResponse msg;
      while (reader->Read(&msg)) {
        running.ids.insert(running.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
        tokens += msg.token_ids_size();
      }
      running.status = reader->Finish();
    });
    for (int i = 0; i < 3000 && tokens.load() < 10; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto struck = Clock::now();
    if (round == 0) {
      ASSERT_EQ(kill(w1.pid(), SIGSTOP), 0);
    } else {
      w1.Kill();
    }
    const auto down = TimeToNotServing(channel, struck, std::chrono::seconds(10));
    Clock::time_point repaired = Clock::now();
    if (round == 0) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      repaired = Clock::now();
      ASSERT_EQ(kill(w1.pid(), SIGCONT), 0);
    } else {
      w1.Restart();
      repaired = Clock::now();
    }
    const auto back = TimeToServing(channel, repaired, kRecoveryLimit);
    client.join();
    std::printf("round %d: NOT_SERVING %.3f s after the fault; SERVING %.3f s after the repair\n",
                round, down.count(), back.count());
    EXPECT_LT(down, std::chrono::seconds(2));
    EXPECT_LT(back, kRecoveryLimit);
    EXPECT_TRUE(running.status.ok()) << running.status.error_message();
    EXPECT_EQ(running.ids.size(), 400u);
    const Result after = Stream(*stub, Tokens({9, 9}, 4), 30000);
    EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  }
  const v1::GetModelInfoResponse info = Info(*stub);
  EXPECT_EQ(info.ledger().failures(), 2);
  EXPECT_EQ(info.ledger().recoveries(), 2);
  EXPECT_EQ(kill(server.pid(), 0), 0) << "the coordinator must not restart";
}

TEST(WorkerSignalTest, SigtermEndsAWorkerWithStatusZeroWithinOneSecond) {
  RemoteWorker worker(kSecret);
  ASSERT_NE(worker.port(), 0);
  const auto sent = Clock::now();
  const int status = worker.Terminate(std::chrono::seconds(1));
  std::printf("the worker exited %.3f s after SIGTERM\n",
              std::chrono::duration<double>(Clock::now() - sent).count());
  ASSERT_NE(status, -1) << "still running 1 s after SIGTERM";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A remote worker does not exit when its coordinator shuts down; the next coordinator uses it.
TEST(WorkerSignalTest, ARemoteWorkerOutlivesItsCoordinatorAndServesTheNextOne) {
  RemoteWorker worker(kSecret);
  ASSERT_NE(worker.port(), 0);
  const std::vector<std::string> args = {
      "--tp", "1", "--pp", "1", "--workers", "127.0.0.1:" + std::to_string(worker.port())};
  for (int round = 0; round < 2; ++round) {
    ServeProcess server(args);
    ASSERT_NE(server.port(), 0) << "round " << round;
    auto stub = v1::Tandem::NewStub(
        ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials()));
    const Result r = Stream(*stub, Tokens({11, 12, 13}, 4), 30000);
    EXPECT_TRUE(r.status.ok()) << round << ": " << r.status.error_message();
    ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
    const int status = server.WaitExit(std::chrono::seconds(20));
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_TRUE(worker.running()) << "the worker exited with its coordinator (round " << round
                                  << ")";
  }
  const int status = worker.Terminate(std::chrono::seconds(1));
  ASSERT_NE(status, -1) << "still running 1 s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace tandem::coordinator
