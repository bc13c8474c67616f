// Which network interface of this machine holds an address: for transports (UCX) that are told
// which devices to use rather than which address to bind, so that they listen only where the
// operator said (docs/serving.md, "Binding"). Thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tandem::comm {

// The name of the interface ("lo", "eth0") that has `host` (an IPv4/IPv6 literal or a name
// resolving to one) as one of its addresses. NOT_FOUND when no interface of this machine has it.
[[nodiscard]] absl::StatusOr<std::string> InterfaceOfAddress(const std::string& host);

}  // namespace tandem::comm
