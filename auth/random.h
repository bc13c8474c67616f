// Unguessable random bytes from the kernel's CSPRNG (getrandom(2), i.e. /dev/urandom).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace tandem::auth {

// `bytes` random bytes as 2 * bytes lowercase hex digits.
[[nodiscard]] absl::StatusOr<std::string> RandomHex(size_t bytes);

}  // namespace tandem::auth
