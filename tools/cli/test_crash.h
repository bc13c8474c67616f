// Test-only crash trigger for tests/cli/crash_cli_test.cc (not a user feature; undocumented in
// --help). With TANDEM_TEST_CRASH=malloc in the environment, a `tandem` process crashes with
// SIGSEGV when it receives SIGUSR2, *while holding glibc's malloc arena lock*: a crash inside
// malloc, the case in which UCX's signal handler (which calls malloc) deadlocked. Any other value,
// or none, does nothing.
#pragma once

namespace tandem::cli {

// Call in main() before any other thread starts (it installs a SIGUSR2 handler).
void MaybeArmTestCrash();

}  // namespace tandem::cli
