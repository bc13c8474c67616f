// RendezvousStore: the small key-value store ranks use to find each other.
//
// Whoever starts the ranks (the launcher today, the coordinator later) serves it; ranks publish
// their addresses (Gloo pair addresses, UCX worker addresses, an NCCL unique id) under keys and
// read the others'. Keys are written once; Get waits until the key exists or the timeout expires.
// No shared filesystem is involved. TcpStoreClient (tcp_rendezvous.h) talks to a
// RendezvousServer; the coordinator may later implement this interface over its own gRPC API.
//
// Errors: DEADLINE_EXCEEDED (key absent after the timeout), UNAVAILABLE (the store cannot be
// reached or closed the connection), INVALID_ARGUMENT (empty or oversized key or value).
// Implementations are thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tandem::comm {

inline constexpr size_t kMaxStoreKeyBytes = 4096;
inline constexpr size_t kMaxStoreValueBytes = 64 << 20;

class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;

  // Sets key := value (overwrites; rendezvous keys are written once by convention).
  [[nodiscard]] virtual absl::Status Set(absl::string_view key, absl::string_view value) = 0;

  // Returns the value of `key`, waiting up to `timeout` for it to be set.
  [[nodiscard]] virtual absl::StatusOr<std::string> Get(absl::string_view key,
                                                        absl::Duration timeout) = 0;

  // Waits up to `timeout` (in total) until every key in `keys` is set.
  [[nodiscard]] absl::Status Wait(const std::vector<std::string>& keys, absl::Duration timeout);
};

}  // namespace tandem::comm
