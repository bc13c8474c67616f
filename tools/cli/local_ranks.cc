#include "tools/cli/local_ranks.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/cpu_quota.h"
#include "core/logging.h"

namespace tandem::cli {
namespace {

constexpr int kMaxLocalRanks = 64;

struct Rank {
  int index = 0;
  pid_t pid = 0;
  absl::Time restart_at = absl::InfinitePast();  // when a dead rank is due to start again
  int consecutive_exits = 0;
};

// The GPU of local rank `i`: the i-th entry of an inherited CUDA_VISIBLE_DEVICES list (the
// devices the pod was given), else device i.
absl::StatusOr<std::string> DeviceOf(int i, int ranks) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible == nullptr || *visible == '\0') return std::to_string(i);
  std::vector<std::string> devices = absl::StrSplit(visible, ',', absl::SkipEmpty());
  if (static_cast<int>(devices.size()) < ranks) {
    return absl::InvalidArgumentError(absl::StrCat("--local-ranks ", ranks,
                                                   ": CUDA_VISIBLE_DEVICES='", visible,
                                                   "' lists only ", devices.size(), " devices"));
  }
  return devices[i];
}

// fork + exec of local rank `r`; the child dies with this process.
absl::StatusOr<pid_t> StartRank(const std::vector<std::string>& argv, const std::string& device,
                                const sigset_t& original_mask) {
  const pid_t self = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self) _exit(127);
    sigprocmask(SIG_SETMASK, &original_mask, nullptr);
    setenv("CUDA_VISIBLE_DEVICES", device.c_str(), 1);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv("/proc/self/exe", args.data());
    _exit(127);
  }
  return pid;
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("ended (wait status ", status, ")");
}

}  // namespace

absl::Status CheckLocalRanks(const LocalRanksOptions& o) {
  if (o.ranks < 1 || o.ranks > kMaxLocalRanks) {
    return absl::InvalidArgumentError(
        absl::StrCat("--local-ranks ", o.ranks, " is outside [1, ", kMaxLocalRanks, "]"));
  }
  if (o.ranks > 1 && (o.first_port < 1 || o.first_port + o.ranks - 1 > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--local-ranks ", o.ranks, " needs --listen HOST:PORT with ports PORT .. PORT+",
        o.ranks - 1, " in [1, 65535] (got port ", o.first_port, ")"));
  }
  if (o.metrics_port > 0 && o.metrics_port + o.ranks - 1 > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-port ", o.metrics_port,
                                                   ": ports up to ", o.metrics_port + o.ranks - 1,
                                                   " for ", o.ranks, " local ranks exceed 65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> RunLocalRanks(const LocalRanksOptions& o) {
  if (absl::Status s = CheckLocalRanks(o); !s.ok()) return s;
  std::vector<std::string> devices;
  for (int i = 0; i < o.ranks; ++i) {
    absl::StatusOr<std::string> d = DeviceOf(i, o.ranks);
    if (!d.ok()) return d.status();
    devices.push_back(*d);
  }
  const int threads =
      o.threads_per_rank > 0 ? o.threads_per_rank : std::max(1, core::AvailableCpus() / o.ranks);
  const std::string self_pid = std::to_string(getpid());
  std::vector<std::vector<std::string>> argvs;
  for (int i = 0; i < o.ranks; ++i) {
    std::vector<std::string> argv = {
        "tandem",       "worker", "--listen",  absl::StrCat(o.host, ":", o.first_port + i),
        "--parent-pid", self_pid, "--threads", std::to_string(threads)};
    if (o.metrics_port >= 0) {
      argv.push_back("--metrics-port");
      argv.push_back(std::to_string(o.metrics_port == 0 ? 0 : o.metrics_port + i));
    }
    argv.insert(argv.end(), o.worker_args.begin(), o.worker_args.end());
    argvs.push_back(std::move(argv));
  }

  // Signals are taken synchronously; the children get the original mask back before exec. They
  // stay blocked after the ranks stopped, so a second SIGTERM cannot kill this process on its way
  // out (exit status 0, not 143).
  sigset_t signals, original;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGCHLD);
  sigprocmask(SIG_BLOCK, &signals, &original);

  std::vector<Rank> ranks(o.ranks);
  std::deque<absl::Time> exits;  // recent rank exits, for the crash-loop limit
  const auto stop_all = [&](int sig) {
    for (Rank& r : ranks) {
      if (r.pid > 0) kill(r.pid, sig);
    }
    const absl::Time until = absl::Now() + o.stop_timeout;
    for (;;) {
      bool alive = false;
      for (Rank& r : ranks) {
        if (r.pid <= 0) continue;
        int status = 0;
        if (waitpid(r.pid, &status, WNOHANG) == r.pid) {
          r.pid = 0;
        } else {
          alive = true;
        }
      }
      if (!alive) break;
      if (absl::Now() >= until) {
        for (Rank& r : ranks) {
          if (r.pid > 0) {
            TANDEM_LOG(WARNING) << "local rank " << r.index << " (pid " << r.pid
                                << ") still running after " << o.stop_timeout << "; killing it";
            kill(r.pid, SIGKILL);
            waitpid(r.pid, nullptr, 0);
            r.pid = 0;
          }
        }
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  };

  for (int i = 0; i < o.ranks; ++i) ranks[i].index = i;
  TANDEM_LOG(INFO) << o.ranks << " local ranks on " << o.host << ":" << o.first_port << ".."
                   << o.first_port + o.ranks - 1 << ", " << threads << " threads each";
  for (;;) {
    // Start every rank that is due (at start-up, and after a rank died).
    const absl::Time now = absl::Now();
    for (Rank& r : ranks) {
      if (r.pid > 0 || r.restart_at > now) continue;
      absl::StatusOr<pid_t> pid = StartRank(argvs[r.index], devices[r.index], original);
      if (!pid.ok()) {
        stop_all(SIGTERM);
        return pid.status();
      }
      r.pid = *pid;
      TANDEM_LOG(INFO) << "local rank " << r.index << " started: pid " << r.pid << ", "
                       << argvs[r.index][3] << ", CUDA_VISIBLE_DEVICES=" << devices[r.index];
    }
    const timespec tick = {0, 100 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      TANDEM_LOG(INFO) << "signal " << sig << ", stopping " << o.ranks << " local ranks";
      stop_all(SIGTERM);
      return 0;
    }
    // Reap: a rank that exited is restarted on its port after a short backoff (doubling with
    // each consecutive exit, at most 5 s) unless ranks keep dying.
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      auto it =
          std::find_if(ranks.begin(), ranks.end(), [pid](const Rank& r) { return r.pid == pid; });
      if (it == ranks.end()) continue;  // an orphan we inherited as PID 1
      Rank& r = *it;
      r.pid = 0;
      const absl::Time at = absl::Now();
      exits.push_back(at);
      while (!exits.empty() && exits.front() < at - o.restart_window) exits.pop_front();
      if (static_cast<int>(exits.size()) > o.max_restarts) {
        TANDEM_LOG(ERROR) << "local rank " << r.index << " (pid " << pid << ") "
                          << DescribeStatus(status) << "; " << exits.size() << " rank exits within "
                          << o.restart_window
                          << ": stopping every rank and exiting 1 (the pod restarts)";
        stop_all(SIGTERM);
        return 1;
      }
      ++r.consecutive_exits;
      const absl::Duration backoff = std::min(
          absl::Milliseconds(100) * (1 << std::min(r.consecutive_exits, 6)), absl::Seconds(5));
      r.restart_at = at + backoff;
      TANDEM_LOG(WARNING) << "local rank " << r.index << " (pid " << pid << ") "
                          << DescribeStatus(status) << "; restarting it on " << argvs[r.index][3]
                          << " in " << backoff;
    }
    // A rank that has run for a whole window without dying starts its backoff afresh.
    for (Rank& r : ranks) {
      if (r.pid > 0 && r.consecutive_exits > 0 && absl::Now() - r.restart_at > o.restart_window) {
        r.consecutive_exits = 0;
      }
    }
  }
}

}  // namespace tandem::cli
