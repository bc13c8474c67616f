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

TEST(ServeFailureTest, WorkerKilledAtIdleTurnsHealthNotServingWithinTwoSeconds) {
  ServeProcess server({"--tp", "1", "--pp", "2"});
  ASSERT_NE(server.port(), 0);
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  ASSERT_EQ(HealthStatus(channel), 1);
  const std::vector<pid_t> workers = server.Children();
  ASSERT_EQ(workers.size(), 2u);
  const auto killed = Clock::now();
  ASSERT_EQ(kill(workers[0], SIGKILL), 0);
  const auto took = TimeToNotServing(channel, killed, std::chrono::seconds(10));
  std::printf("NOT_SERVING %.3f s after the SIGKILL (idle)\n", took.count());
  EXPECT_LT(took, std::chrono::seconds(2));
  // New work is refused with the reason.
  auto stub = v1::Tandem::NewStub(channel);
  const Result r = Stream(*stub, Tokens({1, 2}, 2), 10000);
  EXPECT_EQ(r.status.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(r.status.error_message().find("worker rank 0"), std::string::npos)
      << r.status.error_message();
}

TEST(ServeFailureTest, WorkerFrozenDuringDecodeIsDetectedAndItsStreamEnds) {
  ServeProcess server({"--tp", "1", "--pp", "2"});
  ASSERT_NE(server.port(), 0);
  auto channel = ::grpc::CreateChannel(server.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);
  ASSERT_EQ(HealthStatus(channel), 1);
  const std::vector<pid_t> workers = server.Children();
  ASSERT_EQ(workers.size(), 2u);

  // The longest stream the tiny model's 1024-token context allows.
  constexpr int kMaxNew = 1000;
  std::atomic<int> tokens{0};
  std::atomic<bool> done{false};
  ::grpc::Status status;
  Clock::time_point ended;
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
  std::thread client([&] {
    auto reader = stub->GenerateStream(&ctx, Tokens({1, 2, 3}, kMaxNew));
    v1::GenerateStreamResponse msg;
    while (reader->Read(&msg)) tokens += msg.token_ids_size();
    status = reader->Finish();
    ended = Clock::now();
    done = true;
  });
  for (int i = 0; i < 3000 && tokens.load() == 0 && !done.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (tokens.load() == 0 || done.load()) {
    ctx.TryCancel();
    client.join();
    FAIL() << "the stream did not start decoding: " << status.error_message();
  }
  const auto stopped = Clock::now();
  ASSERT_EQ(kill(workers[1], SIGSTOP), 0);
  KillAtExit cleanup(workers[1]);
  const int before = tokens.load();
  const auto took = TimeToNotServing(channel, stopped, std::chrono::seconds(10));
  client.join();
  const std::chrono::duration<double> stream_end = ended - stopped;
  std::printf("NOT_SERVING %.3f s, stream ended %.3f s after the SIGSTOP (%d tokens before)\n",
              took.count(), stream_end.count(), before);
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(tokens.load(), kMaxNew);
  EXPECT_LT(stream_end, std::chrono::seconds(3));
  EXPECT_NE(status.error_message().find("worker rank 1"), std::string::npos)
      << status.error_message();
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

// A `tandem worker` started by hand or by an orchestrator (no --parent-pid).
class RemoteWorker {
 public:
  RemoteWorker() {
    setenv("TANDEM_GROUP_SECRET", "failure-test-group-secret-0123456789", 1);
    static int instances = 0;
    port_file_ = ::testing::TempDir() + "/failure_worker_" + std::to_string(getpid()) + "_" +
                 std::to_string(instances++) + ".port";
    std::remove(port_file_.c_str());
    pid_ = SpawnInOwnGroup({std::string(TANDEM_BINARY_DIR) + "/bin/tandem", "worker", "--listen",
                            "127.0.0.1:0", "--port-file", port_file_, "--lease-ttl-ms", "1000"},
                           "");
    const auto until = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < until && port_ == 0) {
      std::ifstream in(port_file_);
      in >> port_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~RemoteWorker() {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    std::remove(port_file_.c_str());
  }
  int port() const { return port_; }
  bool running() {
    int status = 0;
    return pid_ > 0 && waitpid(pid_, &status, WNOHANG) == 0;
  }
  // Sends SIGTERM; the exit status if it exits within `limit`, else -1.
  int Terminate(std::chrono::milliseconds limit) {
    kill(pid_, SIGTERM);
    const auto until = Clock::now() + limit;
    int status = 0;
    while (Clock::now() < until) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  pid_t pid_ = 0;
  int port_ = 0;
  std::string port_file_;
};

TEST(WorkerSignalTest, SigtermEndsAWorkerWithStatusZeroWithinOneSecond) {
  RemoteWorker worker;
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
  RemoteWorker worker;
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
