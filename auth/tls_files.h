// gRPC TLS credentials from PEM files (the public API's --tls-* flags, the worker control plane's
// --worker-tls-* / `tandem worker --tls-*`, and `tandem generate --tls-*`).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace tandem::auth {

// Paths of PEM files; empty = not given. `flag_prefix` ("--tls-", "--worker-tls-") names the
// flags in error messages.
struct TlsFiles {
  std::string cert;  // this side's certificate chain
  std::string key;   // its private key
  std::string ca;    // server: CA that client certificates must chain to (mTLS); client: roots
  std::string flag_prefix = "--tls-";
  bool any() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// TLS server credentials: cert and key are required; with `ca`, every client must present a
// certificate signed by it (mTLS), otherwise the handshake fails.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsServerCredentials(
    const TlsFiles& files);

// TLS channel credentials: `ca` verifies the server (empty: the system roots); cert and key
// (both or neither) are the client's certificate for mTLS.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsChannelCredentials(
    const TlsFiles& files);

}  // namespace tandem::auth
