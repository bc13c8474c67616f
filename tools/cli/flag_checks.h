// Start-up checks of the `tandem serve` and `tandem worker` flags: every value is checked against
// what it can mean before anything starts, and a failure names the flag, its value and the allowed
// range, so that no flag combination gives a server that says it is serving and cannot serve
// (issue 11). Each sub-command still parses its flags itself; these only check them.
#pragma once

#include "absl/status/status.h"
#include "coordinator/engine.h"
#include "tools/cli/command.h"

namespace tandem::cli {

// Every numeric flag of `tandem serve` that is given, within its range; --collective; the flags
// that only apply together.
[[nodiscard]] absl::Status CheckServeFlags(const Args& args);

// After the workers reported their capacities: the engine the flags produced can run at least a
// one-token prompt with one new token (names the flags that bound what fell short).
[[nodiscard]] absl::Status CheckServeCapacity(const coordinator::EngineOptions& options);

// `tandem worker`: --listen is HOST:PORT with a port in [0, 65535]; --parent-pid is a pid.
[[nodiscard]] absl::Status CheckWorkerFlags(const Args& args);

}  // namespace tandem::cli
