// The client form of `tandem generate`: "text" [--stream] [--server ADDR] [sampling flags], sent
// to a running `tandem serve` over the tandem.v1 API.
#pragma once

#include "absl/status/status.h"
#include "tools/cli/command.h"

namespace tandem::cli {

[[nodiscard]] absl::Status RunGenerateClient(const Args& args);

}  // namespace tandem::cli
