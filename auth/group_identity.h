// Group identity (DESIGN.md §8): the secret a coordinator and its workers share, and the call
// metadata that carries it, the coordinator's id and its lease epoch on every tandem.worker.v1 RPC.
//
// The secret comes from `--group-secret-file PATH` or the TANDEM_GROUP_SECRET environment variable
// (a Kubernetes Secret mounted as a file or exposed through env `secretKeyRef`); `tandem serve`
// generates one for the workers it starts and hands it over in their environment, never on a
// command line (argv is world-readable in /proc; a process's environment is not). It is compared
// in constant time and never logged.
//
// Metadata (lowercase gRPC keys):
//   x-tandem-group-secret   the secret (every call; plaintext on the wire unless worker mTLS is on)
//   x-tandem-coordinator    the calling coordinator's id (random per coordinator process)
//   x-tandem-epoch          the epoch of the caller's lease (decimal)
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server_context.h"

namespace tandem::auth {

inline constexpr char kGroupSecretEnv[] = "TANDEM_GROUP_SECRET";
inline constexpr char kGroupSecretKey[] = "x-tandem-group-secret";
inline constexpr char kCoordinatorKey[] = "x-tandem-coordinator";
inline constexpr char kEpochKey[] = "x-tandem-epoch";
// A secret shorter than this is refused (the generated ones are 64 hex digits = 256 bits).
inline constexpr size_t kMinSecretBytes = 16;

// A new secret: 32 random bytes as 64 hex digits.
[[nodiscard]] absl::StatusOr<std::string> GenerateGroupSecret();

// The secret from `file` when it is not empty (surrounding whitespace and the trailing newline
// are dropped), else from TANDEM_GROUP_SECRET; "" when neither is set. Errors name the flag or
// variable (unreadable file, shorter than kMinSecretBytes, characters outside printable ASCII).
[[nodiscard]] absl::StatusOr<std::string> LoadGroupSecret(const std::string& file);

// Equality whose time depends only on the lengths, not on where the strings differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// What a coordinator sends with every worker call.
struct GroupCredentials {
  std::string secret;
  std::string coordinator_id;
  uint64_t epoch = 0;
  void AttachTo(grpc::ClientContext* context) const;
};

// What a worker received: the metadata of one call (empty / 0 when absent).
struct CallIdentity {
  absl::string_view secret;
  absl::string_view coordinator_id;
  uint64_t epoch = 0;
  bool has_epoch = false;
};
CallIdentity IdentityOf(const grpc::ServerContextBase& context);

}  // namespace tandem::auth
