// A crash must kill a `tandem` process promptly, never hang it (core/crash_handler.h): every
// process kind -- a CLI command (detokenize --stream, blocked on stdin), `tandem worker`, `tandem
// serve`, and the workers of a `tandem serve --tp 2 --pp 2 --collective ucx` cluster (UCX
// transport and collectives initialised) -- 20 times each, with fatal signals sent by kill
// (SIGSEGV, SIGABRT, SIGBUS) and with a real SIGSEGV raised inside malloc with the arena lock held
// (the test-only TANDEM_TEST_CRASH=malloc trigger, tools/cli/test_crash.h): the case in which
// UCX's own handler deadlocked. Each must die by the signal within 1 s and print Tandem's line.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli/cli_test_util.h"

namespace tandem::cli::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kRepetitions = 20;
constexpr double kExitBoundMs = 1000;

struct Child {
  pid_t pid = 0;
  int stdin_fd = -1;  // write end of the child's stdin, kept open (the CLI blocks on it)
  std::string out;    // stdout + stderr file
};

// Starts `argv` (argv[0] a tandem sub-command) in its own process group, dying with this test,
// without core dumps (they would slow the death being timed), with `env` added.
Child Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& out) {
  int in[2];
  EXPECT_EQ(pipe(in), 0);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(in[0], 0);
    close(in[0]);
    close(in[1]);
    const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    setenv("XDG_CACHE_HOME", (std::string(TANDEM_BINARY_DIR) + "/test-cache").c_str(), 1);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<std::string> full = {std::string(TANDEM_BINARY_DIR) + "/bin/tandem"};
    full.insert(full.end(), argv.begin(), argv.end());
    std::vector<char*> args;
    for (auto& a : full) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);
  close(in[0]);
  return {pid, in[1], out};
}

void Reap(const Child& c) {
  kill(-c.pid, SIGKILL);
  int status;
  waitpid(c.pid, &status, 0);
  if (c.stdin_fd >= 0) close(c.stdin_fd);
}

// Waits until `ready(child)` or `timeout`; false if the child exited first.
template <typename Ready>
bool WaitReady(const Child& c, Ready ready,
               std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (ready(c)) return true;
    int status;
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool OutputHas(const Child& c, const std::string& needle) {
  return ReadBytes(c.out).find(needle) != std::string::npos;
}

// Pids (not zombies) whose parent is `parent`.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const int p = std::atoi(e->d_name);
    if (p <= 0) continue;
    const std::string stat = ReadBytes("/proc/" + std::to_string(p) + "/stat");
    const auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(close_paren + 2));
    char state = 0;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(p);
  }
  closedir(d);
  return out;
}

// A crash to deliver: `signal` sent with kill, or SIGUSR2 that makes the process crash with
// SIGSEGV inside malloc (needs TANDEM_TEST_CRASH=malloc in its environment).
struct Crash {
  int sent;
  int expected;
};
Crash NthCrash(int n, bool in_malloc) {
  if (in_malloc) return {SIGUSR2, SIGSEGV};
  static constexpr int kSignals[] = {SIGSEGV, SIGABRT, SIGBUS};
  const int s = kSignals[n % 3];
  return {s, s};
}

// Sends each target its crash at once, then checks that every one died by the expected signal
// within kExitBound and printed Tandem's crash line. `targets` are (pid, output file, is a direct
// child of this test); processes that are not our children are polled through /proc.
struct Target {
  pid_t pid;
  std::string out;
  bool waitable;
  Crash crash;
};

void CrashAndExpectPromptDeath(const std::vector<Target>& targets, const std::string& what) {
  std::vector<Clock::time_point> sent(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    sent[i] = Clock::now();
    ASSERT_EQ(kill(targets[i].pid, targets[i].crash.sent), 0) << what << " " << i;
  }
  std::vector<int> status(targets.size(), -1);
  std::vector<double> took_ms(targets.size(), -1);
  size_t alive = targets.size();
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (alive > 0 && Clock::now() < until) {
    for (size_t i = 0; i < targets.size(); ++i) {
      if (took_ms[i] >= 0) continue;
      bool dead = false;
      if (targets[i].waitable) {
        int st;
        if (waitpid(targets[i].pid, &st, WNOHANG) == targets[i].pid) {
          status[i] = st;
          dead = true;
        }
      } else {
        const std::string stat = ReadBytes("/proc/" + std::to_string(targets[i].pid) + "/stat");
        const auto p = stat.rfind(')');
        dead = stat.empty() || (p != std::string::npos && p + 2 < stat.size() &&
                                (stat[p + 2] == 'Z' || stat[p + 2] == 'X'));
      }
      if (dead) {
        took_ms[i] = std::chrono::duration<double, std::milli>(Clock::now() - sent[i]).count();
        --alive;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  double worst = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    EXPECT_GE(took_ms[i], 0) << what << " #" << i << " (pid " << t.pid << ", signal "
                             << t.crash.sent << ") still alive 5 s after the crash: hung";
    if (took_ms[i] < 0) continue;
    worst = std::max(worst, took_ms[i]);
    EXPECT_LT(took_ms[i], kExitBoundMs) << what << " #" << i;
    if (t.waitable) {
      EXPECT_TRUE(WIFSIGNALED(status[i]) && WTERMSIG(status[i]) == t.crash.expected)
          << what << " #" << i << " status " << status[i];
    }
    if (!t.waitable) continue;  // a server's worker: its stderr is not in the server's output
    const std::string line = "tandem: fatal signal " + std::to_string(t.crash.expected) + " (";
    EXPECT_TRUE(OutputHas({t.pid, -1, t.out}, line)) << what << " #" << i << " output:\n"
                                                     << ReadBytes(t.out).substr(0, 2000);
  }
  std::printf("%s: %zu crashes, slowest death %.1f ms after the signal\n", what.c_str(),
              targets.size(), worst);
}

const std::string& TinyModel() {
  static const std::string dir = [] {
    const std::string d = FreshDir("crash_model");
    EXPECT_EQ(Tandem("make-tiny-model " + d + " --seed 3").exit_code, 0);
    return d;
  }();
  return dir;
}

std::string Tokenizer() {
  return std::string(TANDEM_SOURCE_DIR) + "/tests/testdata/tokenizer/tokenizer.json";
}

enum class Kind { kCli, kWorker, kServe };

// kRepetitions processes of `kind` at once, each crashed once (kill signals or inside malloc).
void CrashProcesses(Kind kind, bool in_malloc) {
  const std::string dir = FreshDir(std::string("crash_") + std::to_string(static_cast<int>(kind)) +
                                   (in_malloc ? "_malloc" : "_kill"));
  std::filesystem::create_directories(dir);
  std::vector<Child> children;
  std::vector<std::string> env;
  if (in_malloc) env.push_back("TANDEM_TEST_CRASH=malloc");
  // A worker refuses to start without a group secret (docs/serving.md, "Security").
  if (kind == Kind::kWorker)
    env.push_back("TANDEM_GROUP_SECRET=crash-test-group-secret-0123456789");
  for (int i = 0; i < kRepetitions; ++i) {
    const std::string out = dir + "/" + std::to_string(i) + ".out";
    switch (kind) {
      case Kind::kCli:
        children.push_back(Spawn({"detokenize", "--tokenizer", Tokenizer(), "--stream"}, env, out));
        EXPECT_EQ(write(children.back().stdin_fd, "1 ", 2), 2);
        break;
      case Kind::kWorker:
        children.push_back(Spawn({"worker", "--listen", "127.0.0.1:0", "--port-file",
                                  dir + "/" + std::to_string(i) + ".port"},
                                 env, out));
        break;
      case Kind::kServe:
        children.push_back(Spawn(
            {"serve", "--model", TinyModel(), "--port", "0", "--slots", "2", "--blocks", "32"}, env,
            out));
        break;
    }
  }
  std::vector<Target> targets;
  for (int i = 0; i < kRepetitions; ++i) {
    const Child& c = children[i];
    const bool ready = WaitReady(c, [&](const Child& ch) {
      switch (kind) {
        case Kind::kCli:
          return OutputHas(ch, "\"delta\"");
        case Kind::kWorker:
          return std::filesystem::exists(dir + "/" + std::to_string(i) + ".port");
        case Kind::kServe:
          return OutputHas(ch, "listening on");
      }
      return false;
    });
    EXPECT_TRUE(ready) << "process " << i << " did not start:\n" << ReadBytes(c.out);
    if (ready) targets.push_back({c.pid, c.out, true, NthCrash(i, in_malloc)});
  }
  const char* names[] = {"tandem detokenize --stream", "tandem worker", "tandem serve"};
  // A few at a time: 20 servers and their workers torn down at once on a loaded 2-core machine
  // measure the kernel's process teardown under contention, not how promptly each one dies.
  constexpr size_t kBatch = 4;
  for (size_t b = 0; b < targets.size(); b += kBatch) {
    const std::vector<Target> batch(targets.begin() + b,
                                    targets.begin() + std::min(targets.size(), b + kBatch));
    CrashAndExpectPromptDeath(batch, std::string(names[static_cast<int>(kind)]) +
                                         (in_malloc ? " (SIGSEGV inside malloc)" : " (kill)") +
                                         " batch " + std::to_string(b / kBatch));
  }
  for (const Child& c : children) Reap(c);
}

TEST(CrashCliTest, CliCommandDiesOnFatalSignals) { CrashProcesses(Kind::kCli, false); }
TEST(CrashCliTest, CliCommandDiesOnCrashInsideMalloc) { CrashProcesses(Kind::kCli, true); }
TEST(CrashCliTest, WorkerDiesOnFatalSignals) { CrashProcesses(Kind::kWorker, false); }
TEST(CrashCliTest, WorkerDiesOnCrashInsideMalloc) { CrashProcesses(Kind::kWorker, true); }
TEST(CrashCliTest, ServeDiesOnFatalSignals) { CrashProcesses(Kind::kServe, false); }
TEST(CrashCliTest, ServeDiesOnCrashInsideMalloc) { CrashProcesses(Kind::kServe, true); }

// Workers that loaded a pipeline stage with the UCX transport and UCX TP collectives: clusters of
// tp=2 x pp=kPipelineStages until 20 workers crashed inside malloc and 20 by kill signals, plus
// each cluster's `tandem serve` (after its workers).
constexpr int kPipelineStages = 5;

TEST(CrashCliTest, UcxClusterWorkersAndServeDie) {
  const std::string dir = FreshDir("crash_ucx");
  std::filesystem::create_directories(dir);
  for (bool in_malloc : {true, false}) {
    int crashed = 0;
    for (int cluster = 0; crashed < kRepetitions; ++cluster) {
      const std::string out = dir + "/" + std::to_string(in_malloc) + "_" + std::to_string(cluster);
      const Child serve = Spawn({"serve", "--model", TinyModel(), "--port", "0", "--tp", "2",
                                 "--pp", std::to_string(kPipelineStages), "--collective", "ucx"},
                                in_malloc ? std::vector<std::string>{"TANDEM_TEST_CRASH=malloc"}
                                          : std::vector<std::string>{},
                                out + ".serve");
      ASSERT_TRUE(WaitReady(serve, [](const Child& c) { return OutputHas(c, "listening on"); }))
          << ReadBytes(serve.out);
      const std::vector<pid_t> workers = ChildrenOf(serve.pid);
      ASSERT_EQ(workers.size(), 2u * kPipelineStages) << ReadBytes(serve.out);
      std::vector<Target> targets;
      for (pid_t w : workers) {
        // The workers write to the server's output file (inherited stdout/stderr).
        targets.push_back({w, serve.out, false, NthCrash(crashed++, in_malloc)});
      }
      CrashAndExpectPromptDeath(targets, std::string("ucx cluster ") + std::to_string(cluster) +
                                             " workers" +
                                             (in_malloc ? " (inside malloc)" : " (kill)"));
      // The server itself (its workers gone).
      CrashAndExpectPromptDeath({{serve.pid, serve.out, true, NthCrash(cluster, in_malloc)}},
                                "ucx cluster " + std::to_string(cluster) + " serve");
      Reap(serve);
    }
  }
}

}  // namespace
}  // namespace tandem::cli::testing
