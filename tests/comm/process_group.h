// ProcessGroup: child processes of a multi-process test, in their own process group, always
// reaped. The destructor SIGKILLs the whole group and waits for every child, so a failing or
// hanging test leaves nothing behind.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem::comm::testing {

class ProcessGroup {
 public:
  ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;
  ~ProcessGroup() { KillAll(); }

  // fork + exec argv[0] with argv; returns the pid (or -1).
  pid_t Spawn(const std::vector<std::string>& argv) {
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, pgid_);  // pgid_ 0 on the first child: it leads a new group
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    if (pid < 0) return -1;
    setpgid(pid, pgid_);  // also here: whichever runs first wins the race
    if (pgid_ == 0) pgid_ = pid;
    running_.push_back(pid);
    return pid;
  }

  void Kill(pid_t pid, int sig) { kill(pid, sig); }

  // Waits until `pid` exits or `deadline`; returns its wait status, or -1 on timeout.
  int Wait(pid_t pid, absl::Time deadline) {
    for (;;) {
      if (auto it = exited_.find(pid); it != exited_.end()) return it->second;
      int status = 0;
      const pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        exited_[pid] = status;
        std::erase(running_, pid);
        return status;
      }
      if (absl::Now() >= deadline) return -1;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void KillAll() {
    if (pgid_ != 0) kill(-pgid_, SIGKILL);
    for (pid_t pid : std::vector<pid_t>(running_)) {
      int status = 0;
      waitpid(pid, &status, 0);
      exited_[pid] = status;
    }
    running_.clear();
  }

  // True when a child of the group is still alive (not yet reaped or reaped as running).
  bool AnyAlive() const { return pgid_ != 0 && kill(-pgid_, 0) == 0; }

 private:
  pid_t pgid_ = 0;
  std::vector<pid_t> running_;
  std::map<pid_t, int> exited_;
};

}  // namespace tandem::comm::testing
