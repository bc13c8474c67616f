// Real `tandem serve` and `tandem worker` processes for end-to-end tests: each in its own process
// group that dies with the test binary (PR_SET_PDEATHSIG), killed and reaped at the end, with
// extra environment variables and stdout + stderr captured to a file.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::testing {

using Env = std::map<std::string, std::string>;

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string TandemBinary() { return std::string(TANDEM_BINARY_DIR) + "/bin/tandem"; }

// Starts `argv` with `env` added, stdout and stderr to `out_path`.
inline pid_t Spawn(std::vector<std::string> argv, const Env& env, const std::string& out_path) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setenv("XDG_CACHE_HOME", (std::string(TANDEM_BINARY_DIR) + "/test-cache").c_str(), 1);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    FILE* f = freopen(out_path.c_str(), "w", stdout);
    (void)f;
    dup2(fileno(stdout), 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

inline std::string NewOutPath(const std::string& what) {
  static int instances = 0;
  return ::testing::TempDir() + "/" + what + "_" + std::to_string(getpid()) + "_" +
         std::to_string(instances++) + ".out";
}

// A process group that is killed and reaped when this goes away.
class Process {
 public:
  Process() = default;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { Kill(); }
  pid_t pid() const { return pid_; }
  std::string output() const { return ReadAll(out_path_); }
  // SIGKILL to the whole group, then reap.
  void Kill() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }
  // Waits (up to `seconds`) for the process to exit on its own; its exit status, or -1.
  int Wait(int seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (pid_ > 0 && std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        kill(-pid_, SIGKILL);  // what is left of its group
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

 protected:
  pid_t pid_ = 0;
  std::string out_path_;
};

// `tandem serve --port 0 <args>`; port() is 0 when it did not start (see output()).
class Serve : public Process {
 public:
  explicit Serve(const std::vector<std::string>& args, const Env& env = {}, int timeout_s = 60) {
    out_path_ = NewOutPath("serve");
    std::vector<std::string> argv = {TandemBinary(), "serve", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = Spawn(argv, env, out_path_);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < until && port_ == 0 && pid_ > 0) {
      const std::string text = output();
      const auto at = text.find("listening on ");
      const auto colon = at == std::string::npos ? at : text.find(':', at);
      if (colon != std::string::npos) port_ = std::atoi(text.c_str() + colon + 1);
      int status = 0;
      if (port_ == 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        kill(-pid_, SIGKILL);
        pid_ = 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int exit_status() const { return exit_status_; }  // when it exited before listening

 private:
  int port_ = 0;
  int exit_status_ = -1;
};

// `tandem worker --listen 127.0.0.1:0 <args>` (as started on another host).
class Worker : public Process {
 public:
  explicit Worker(const std::vector<std::string>& args, const Env& env) {
    out_path_ = NewOutPath("worker");
    port_file_ = out_path_ + ".port";
    std::vector<std::string> argv = {TandemBinary(), "worker",      "--listen",
                                     "127.0.0.1:0",  "--port-file", port_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = Spawn(argv, env, out_path_);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until && port_ == 0) {
      std::ifstream in(port_file_);
      in >> port_;
      int status = 0;
      if (port_ == 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        kill(-pid_, SIGKILL);
        pid_ = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~Worker() { std::remove(port_file_.c_str()); }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  std::string port_file_;
};

}  // namespace tandem::testing
