// The fixture of the end-to-end tests: real `tandem serve` processes (coordinator + worker
// processes of the tiny model) on loopback gRPC, each in its own process group that dies with the
// test binary and is killed and reaped at the end, and small client helpers.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace tandem::coordinator {

namespace v1 = ::tandem::v1;
using Clock = std::chrono::system_clock;

// Starts `argv` in a new process group that dies with this test binary (PR_SET_PDEATHSIG, so a
// CTest timeout leaves nothing behind; a server's workers follow their parent the same way), with
// stdout (and stderr too with `with_stderr`) to `stdout_path` when given and the tiny model cached
// under the build directory.
inline pid_t SpawnInOwnGroup(std::vector<std::string> argv, const std::string& stdout_path,
                             bool with_stderr = false) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setenv("XDG_CACHE_HOME", (std::string(TANDEM_BINARY_DIR) + "/test-cache").c_str(), 1);
    if (!stdout_path.empty()) {
      FILE* f = freopen(stdout_path.c_str(), "w", stdout);
      (void)f;
      if (with_stderr) dup2(fileno(stdout), 2);
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

class ServeProcess {
 public:
  // `with_stderr`: output() has the server's log lines too (otherwise they go to the test's
  // stderr). The port is read from the line with `port_marker` ("listening on ": printed once
  // loaded and SERVING; "the API answers on ": printed as soon as the port is bound, while the
  // workers load).
  explicit ServeProcess(const std::vector<std::string>& extra, bool with_stderr = false,
                        const std::string& port_marker = "listening on ") {
    static int instances = 0;  // several servers per test binary: one output file each
    const std::string dir = ::testing::TempDir() + "/serve_" + std::to_string(getpid()) + "_" +
                            std::to_string(instances++);
    out_path_ = dir + ".out";
    std::vector<std::string> argv = {std::string(TANDEM_BINARY_DIR) + "/bin/tandem", "serve",
                                     "--port", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_ = SpawnInOwnGroup(argv, out_path_, with_stderr);
    const auto until = Clock::now() + std::chrono::seconds(120);
    while (Clock::now() < until && port_ == 0) {
      std::ifstream in(out_path_);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      const auto at = text.find(port_marker);
      const auto colon = at == std::string::npos ? at : text.find(':', at);
      if (colon != std::string::npos) port_ = std::atoi(text.c_str() + colon + 1);
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        exit_status_ = status;
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
  // What the server wrote to stdout (and stderr, see the constructor) so far.
  std::string output() const {
    std::ifstream in(out_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  pid_t pid() const { return pid_; }
  // Waits up to `limit` for the server to exit by itself and reaps it: its waitpid status, or -1
  // if it is still running (the status also when it exited while the constructor waited).
  int WaitExit(std::chrono::milliseconds limit) {
    const auto until = Clock::now() + limit;
    int status = 0;
    while (pid_ > 0) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        exit_status_ = status;
        return status;
      }
      if (Clock::now() > until) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return exit_status_;
  }
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
  int exit_status_ = -1;  // once reaped
  std::string out_path_;
};

// A `tandem worker` started by hand or by an orchestrator (no --parent-pid). Restart() kills it
// and starts a new process on the same address, as a pod restart would.
class RemoteWorker {
 public:
  // Children inherit the group secret through the environment (as from a Kubernetes Secret).
  // `listen_host`: the interface the worker binds ("0.0.0.0": all; it is reached at 127.0.0.1).
  explicit RemoteWorker(const std::string& group_secret,
                        const std::string& listen_host = "127.0.0.1")
      : listen_host_(listen_host) {
    setenv("TANDEM_GROUP_SECRET", group_secret.c_str(), 1);
    static int instances = 0;
    port_file_ = ::testing::TempDir() + "/remote_worker_" + std::to_string(getpid()) + "_" +
                 std::to_string(instances++) + ".port";
    Spawn(listen_host_ + ":0");
  }
  ~RemoteWorker() {
    Kill();
    std::remove(port_file_.c_str());
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  bool running() {
    int status = 0;
    return pid_ > 0 && waitpid(pid_, &status, WNOHANG) == 0;
  }
  void Kill() {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = 0;
    }
  }
  // SIGKILL, then a new process listening on the same port.
  void Restart() {
    Kill();
    const int port = port_;
    Spawn(listen_host_ + ":" + std::to_string(port));
    EXPECT_EQ(port_, port);
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
  void Spawn(const std::string& listen) {
    std::remove(port_file_.c_str());
    port_ = 0;
    pid_ = SpawnInOwnGroup({std::string(TANDEM_BINARY_DIR) + "/bin/tandem", "worker", "--listen",
                            listen, "--port-file", port_file_, "--lease-ttl-ms", "1000"},
                           "");
    const auto until = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < until && port_ == 0) {
      std::ifstream in(port_file_);
      in >> port_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::string listen_host_;
  pid_t pid_ = 0;
  int port_ = 0;
  std::string port_file_;
};

struct Result {
  ::grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  std::vector<v1::TokenLogprob> logprobs;
};

inline Result Stream(v1::Tandem::Stub& stub, const v1::GenerateRequest& req,
                     int timeout_ms = 60000) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::milliseconds(timeout_ms));
  auto reader = stub.GenerateStream(&ctx, req);
  v1::GenerateStreamResponse msg;
  Result r;
  while (reader->Read(&msg)) {
    r.ids.insert(r.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
    r.text += msg.text_delta();
    r.logprobs.insert(r.logprobs.end(), msg.logprobs().begin(), msg.logprobs().end());
    if (msg.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) r.reason = msg.finish_reason();
  }
  r.status = reader->Finish();
  return r;
}

inline v1::GenerateRequest Tokens(const std::vector<int32_t>& ids, int max_new) {
  v1::GenerateRequest r;
  for (int32_t id : ids) r.mutable_tokens()->add_ids(id);
  r.mutable_stopping()->set_max_new_tokens(max_new);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

// An f32 tiny model (with the built-in tokenizer), written once per test process. Tests that
// compare tokens across batchings or layouts use it: the bf16 default rounds activations to bf16,
// so a different (equally valid) order of f32 additions, e.g. a prompt prefilled in two chunks
// instead of one, can round a value to the neighbouring bf16 number and change a near-tied argmax
// (docs/serving.md, "Reproducibility").
inline const std::string& F32Model() {
  static const std::string dir = [] {
    const std::string d = ::testing::TempDir() + "/serve_f32_model_" + std::to_string(getpid());
    const std::string make = std::string(TANDEM_BINARY_DIR) + "/bin/tandem make-tiny-model " + d +
                             " --dtype f32 --seed 7 > /dev/null";
    EXPECT_EQ(std::system(make.c_str()), 0) << make;
    std::atexit([] {
      std::system(
          ("rm -rf " + ::testing::TempDir() + "/serve_f32_model_" + std::to_string(getpid()))
              .c_str());
    });
    return d;
  }();
  return dir;
}

inline v1::GetModelInfoResponse Info(v1::Tandem::Stub& stub) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
  v1::GetModelInfoResponse info;
  EXPECT_TRUE(stub.GetModelInfo(&ctx, {}, &info).ok());
  return info;
}

// The pools are back to full once nothing is live (polling: the engine frees within a step).
inline void ExpectPoolsFull(v1::Tandem::Stub& stub) {
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

// grpc.health.v1.Health/Check of `service` (default: the server as a whole), hand-encoded: the
// response's field 1 (status) is SERVING = 1 or NOT_SERVING = 2. Returns -1 on an RPC error.
inline int HealthStatus(const std::shared_ptr<::grpc::Channel>& channel,
                        const std::string& service = "") {
  ::grpc::GenericStub stub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(5));
  ::grpc::ByteBuffer request, response;
  std::string encoded;  // HealthCheckRequest { string service = 1; }
  if (!service.empty()) {
    encoded.push_back(0x0A);
    encoded.push_back(static_cast<char>(service.size()));
    encoded += service;
  }
  ::grpc::Slice slice(encoded);
  request = ::grpc::ByteBuffer(&slice, 1);
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

}  // namespace tandem::coordinator
