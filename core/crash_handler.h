// Fatal-signal handling shared by every `tandem` process (CLI, `tandem worker`, `tandem serve`).
//
// libucs (UCX, linked into `tandem`) installs a SIGSEGV/SIGBUS/SIGILL/SIGFPE handler from its
// shared-library constructor, before main(). That handler prints a symbolised backtrace, which
// calls malloc, and so deadlocks when the crash happened inside malloc: the process hangs instead
// of dying and no supervisor sees it exit. InstallCrashHandler replaces it.
#pragma once

namespace tandem::core {

// Call first thing in main(), before any thread starts or UCX is used:
//  - unless the user set UCX_HANDLE_ERRORS, sets it to "none" and UCX_ERROR_SIGNALS to "" (if
//    unset) in the environment (read by child processes, e.g. the workers `tandem serve` starts);
//  - installs, for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP and SIGSYS, a handler that
//    is async-signal-safe (write(2) only): it prints one line naming `program`, the signal, the
//    faulting address and the thread, restores SIG_DFL and re-raises, so the process dies by that
//    signal (core dump where enabled). It runs on an alternate stack, so a stack overflow in the
//    main thread is reported too. When the user set UCX_HANDLE_ERRORS (to debug with UCX's
//    handler), the signals UCX handles keep its handler.
// `program` must outlive the process (e.g. a string literal).
void InstallCrashHandler(const char* program);

}  // namespace tandem::core
