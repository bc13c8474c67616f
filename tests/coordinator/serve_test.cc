// End-to-end: a real `tandem serve` (coordinator + tp=2 x pp=2 worker processes of the tiny model)
// on loopback gRPC. The server runs in its own process group, killed and reaped at the end.
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
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

namespace tandem::coordinator {
namespace {

namespace v1 = ::tandem::v1;
using Clock = std::chrono::system_clock;

class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& extra) {
    static int instances = 0;  // several servers per test binary: one output file each
    const std::string dir = ::testing::TempDir() + "/serve_" + std::to_string(getpid()) + "_" +
                            std::to_string(instances++);
    out_path_ = dir + ".out";
    std::vector<std::string> argv = {std::string(TANDEM_BINARY_DIR) + "/bin/tandem", "serve",
                                     "--port", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      // If the test binary dies (e.g. killed by CTest's timeout), the server dies with it; its
      // workers follow their parent the same way.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      setenv("XDG_CACHE_HOME", (std::string(TANDEM_BINARY_DIR) + "/test-cache").c_str(), 1);
      FILE* f = freopen(out_path_.c_str(), "w", stdout);
      (void)f;
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    setpgid(pid_, pid_);
    const auto until = Clock::now() + std::chrono::seconds(120);
    while (Clock::now() < until && port_ == 0) {
      std::ifstream in(out_path_);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      const auto at = text.find("listening on 127.0.0.1:");
      if (at != std::string::npos) port_ = std::atoi(text.c_str() + at + 23);
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(-pid_, SIGTERM);
      const auto until = Clock::now() + std::chrono::seconds(10);
      int status = 0;
      while (waitpid(pid_, &status, WNOHANG) == 0 && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      kill(-pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  pid_t pid() const { return pid_; }
  // Pids whose parent is the server (the workers).
  std::vector<pid_t> Children() const {
    std::vector<pid_t> out;
    DIR* d = opendir("/proc");
    if (d == nullptr) return out;
    while (dirent* e = readdir(d)) {
      const int p = std::atoi(e->d_name);
      if (p <= 0) continue;
      std::ifstream stat("/proc/" + std::to_string(p) + "/stat");
      std::string line;
      std::getline(stat, line);
      const auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state = 0;
      int ppid = 0;
      rest >> state >> ppid;
      if (ppid == pid_ && state != 'Z') out.push_back(p);
    }
    closedir(d);
    return out;
  }

 private:
  pid_t pid_ = 0;
  int port_ = 0;
  std::string out_path_;
};

struct Result {
  ::grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
};

Result Stream(v1::Tandem::Stub& stub, const v1::GenerateRequest& req, int timeout_ms = 60000) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::milliseconds(timeout_ms));
  auto reader = stub.GenerateStream(&ctx, req);
  v1::GenerateStreamResponse msg;
  Result r;
  while (reader->Read(&msg)) {
    r.ids.insert(r.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
    r.text += msg.text_delta();
    if (msg.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) r.reason = msg.finish_reason();
  }
  r.status = reader->Finish();
  return r;
}

v1::GenerateRequest Tokens(const std::vector<int32_t>& ids, int max_new) {
  v1::GenerateRequest r;
  for (int32_t id : ids) r.mutable_tokens()->add_ids(id);
  r.mutable_stopping()->set_max_new_tokens(max_new);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

v1::GetModelInfoResponse Info(v1::Tandem::Stub& stub) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
  v1::GetModelInfoResponse info;
  EXPECT_TRUE(stub.GetModelInfo(&ctx, {}, &info).ok());
  return info;
}

// The pools are back to full once nothing is live (polling: the engine frees within a step).
void ExpectPoolsFull(v1::Tandem::Stub& stub) {
  v1::GetModelInfoResponse info;
  for (int i = 0; i < 200; ++i) {
    info = Info(stub);
    if (info.capacities().free_slots() == info.capacities().num_slots() &&
        info.capacities().free_blocks() == info.capacities().num_blocks()) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << info.capacities().DebugString();
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess({"--slots", "16", "--blocks", "256", "--block-size", "8",
                                "--max-queued-requests", "200", "--max-tokens-per-step", "64"});
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

// grpc.health.v1.Health/Check with an empty service name, hand-encoded: the response's field 1
// (status) is SERVING = 1 or NOT_SERVING = 2. Returns -1 on an RPC error.
int HealthStatus(const std::shared_ptr<::grpc::Channel>& channel) {
  ::grpc::GenericStub stub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(5));
  ::grpc::ByteBuffer request, response;
  ::grpc::Slice empty("", 0);
  request = ::grpc::ByteBuffer(&empty, 1);
  std::promise<::grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", ::grpc::StubOptions(), &request, &response,
                 [&done](::grpc::Status s) { done.set_value(s); });
  const ::grpc::Status s = done.get_future().get();
  if (!s.ok()) return -1;
  std::vector<::grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
  return bytes.empty() ? 0 : -2;
}

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
  // (Invalid UTF-8 text cannot be sent through the C++ client: proto3 refuses to serialize it;
  // validation_test covers the server's check.)
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

}  // namespace
TEST(ServeWorkerDeathTest, KilledWorkerGivesUnavailableAndNotServing) {
  ServeProcess server({"--slots", "8"});
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
    EXPECT_LT(ended[i] - killed, std::chrono::seconds(10));
  }
  EXPECT_EQ(HealthStatus(channel), 2);  // NOT_SERVING
  // The coordinator keeps running and answers; new work is refused with UNAVAILABLE.
  EXPECT_GT(Info(*stub).vocab_size(), 0);
  EXPECT_EQ(Stream(*stub, Tokens({1}, 2)).status.error_code(), ::grpc::StatusCode::UNAVAILABLE);
}

}  // namespace tandem::coordinator
