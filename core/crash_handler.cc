#include "core/crash_handler.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace tandem::core {
namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};

const char* g_program = "tandem";

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGILL:
      return "SIGILL";
    case SIGFPE:
      return "SIGFPE";
    case SIGABRT:
      return "SIGABRT";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGSYS:
      return "SIGSYS";
  }
  return "signal";
}

// Async-signal-safe line building: a fixed buffer, no allocation, no stdio.
struct Line {
  char buf[256];
  size_t len = 0;
  void Add(const char* s) {
    while (*s != '\0' && len < sizeof(buf) - 1) buf[len++] = *s++;
  }
  void AddUnsigned(uint64_t v, int base) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v != 0);
    while (n > 0 && len < sizeof(buf) - 1) buf[len++] = digits[--n];
  }
};

void OnFatalSignal(int sig, siginfo_t* info, void* /*context*/) {
  const int saved_errno = errno;
  Line line;
  line.Add(g_program);
  line.Add(": fatal signal ");
  line.AddUnsigned(static_cast<uint64_t>(sig), 10);
  line.Add(" (");
  line.Add(SignalName(sig));
  line.Add(")");
  if (info != nullptr && info->si_code > 0 &&
      (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE)) {
    line.Add(" at address 0x");
    line.AddUnsigned(reinterpret_cast<uintptr_t>(info->si_addr), 16);
  } else if (info != nullptr && info->si_code <= 0) {
    line.Add(" sent by pid ");
    line.AddUnsigned(static_cast<uint64_t>(info->si_pid), 10);
  }
  line.Add(" in pid ");
  line.AddUnsigned(static_cast<uint64_t>(getpid()), 10);
  line.Add(" thread ");
  line.AddUnsigned(static_cast<uint64_t>(syscall(SYS_gettid)), 10);
  line.Add("; exiting\n");
  ssize_t written = 0;
  while (written < static_cast<ssize_t>(line.len)) {
    const ssize_t n = write(STDERR_FILENO, line.buf + written, line.len - written);
    if (n <= 0) break;
    written += n;
  }
  // SA_RESETHAND already restored SIG_DFL; SA_NODEFER lets the re-raise kill at once. A fault
  // re-executes the faulting instruction on return and dies the same way.
  errno = saved_errno;
  raise(sig);
}

void SetAlternateStack() {
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) return;
  static char stack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = stack;
  ss.ss_size = sizeof(stack);
  ss.ss_flags = 0;
  sigaltstack(&ss, nullptr);
}

}  // namespace

void InstallCrashHandler(const char* program) {
  g_program = program;
  const bool user_chose_ucx_handler = std::getenv("UCX_HANDLE_ERRORS") != nullptr;
  if (!user_chose_ucx_handler) {
    setenv("UCX_HANDLE_ERRORS", "none", 1);
    if (std::getenv("UCX_ERROR_SIGNALS") == nullptr) setenv("UCX_ERROR_SIGNALS", "", 1);
  }
  SetAlternateStack();
  struct sigaction action {};
  action.sa_sigaction = OnFatalSignal;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  for (int sig : kFatalSignals) {
    struct sigaction current {};
    if (user_chose_ucx_handler && sigaction(sig, nullptr, &current) == 0 &&
        current.sa_handler != SIG_DFL) {
      continue;  // UCX's (or another library's) handler, kept because the user asked for it
    }
    sigaction(sig, &action, nullptr);
  }
}

}  // namespace tandem::core
