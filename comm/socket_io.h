// Small POSIX socket helpers with deadlines, shared by the TCP rendezvous client and server.
// Stateless and thread-safe; no SIGPIPE (send uses MSG_NOSIGNAL).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tandem::comm::internal {

// Writes/reads exactly n bytes before `deadline` (absl::InfiniteFuture() to wait forever).
// UNAVAILABLE on a closed or broken connection, DEADLINE_EXCEEDED when time runs out.
absl::Status WriteAll(int fd, const void* data, size_t n, absl::Time deadline);
absl::Status ReadAll(int fd, void* data, size_t n, absl::Time deadline);

// Connects a TCP socket to host:port, retrying refused connections until `deadline`.
absl::StatusOr<int> ConnectTcp(absl::string_view host, int port, absl::Time deadline);

// Splits "host:port" (IPv6 hosts as "[::1]:port").
absl::Status ParseHostPort(absl::string_view address, std::string* host, int* port);

}  // namespace tandem::comm::internal
