#include "tools/cli/test_crash.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

namespace tandem::cli {
namespace {

int* volatile g_null = nullptr;

// fopencookie write callback: the crash. malloc_stats() calls it through fprintf(stderr, ...)
// with main_arena's mutex held.
ssize_t CrashingWrite(void* /*cookie*/, const char* /*buf*/, size_t size) {
  *g_null = 1;
  return static_cast<ssize_t>(size);
}

int g_pipe[2] = {-1, -1};

// SIGUSR2 may arrive on any thread (libraries start some before main): the handler only wakes
// the crash thread, async-signal-safely.
void OnSigusr2(int) {
  const char byte = 1;
  ssize_t n = write(g_pipe[1], &byte, 1);
  (void)n;
}

}  // namespace

void MaybeArmTestCrash() {
  const char* mode = std::getenv("TANDEM_TEST_CRASH");
  if (mode == nullptr || std::strcmp(mode, "malloc") != 0) return;
  // One arena for all threads, so the crashing thread's own allocations (e.g. a signal handler's)
  // need the lock it holds, as after a crash inside malloc on the main thread.
  mallopt(M_ARENA_MAX, 1);
  if (pipe(g_pipe) != 0) std::abort();
  struct sigaction action {};
  action.sa_handler = OnSigusr2;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &action, nullptr);
  std::thread([] {
    char byte;
    while (read(g_pipe[0], &byte, 1) != 1) {
    }
    cookie_io_functions_t io{};
    io.write = CrashingWrite;
    FILE* crashing = fopencookie(nullptr, "w", io);
    if (crashing == nullptr) std::abort();
    setvbuf(crashing, nullptr, _IONBF, 0);
    stderr = crashing;
    malloc_stats();  // locks main_arena, then writes to stderr: SIGSEGV with the lock held
    std::abort();
  }).detach();
}

}  // namespace tandem::cli
