// API keys of the public tandem.v1 API (docs/serving.md, "Security").
//
// Clients send `authorization: Bearer <key>` metadata. The keys file (`serve --api-keys-file`)
// holds one key per line, then optional settings separated by spaces:
//
//   # comment (blank lines too)
//   3f9a0c...e1 name=batch-jobs
//   7b21d4...90 name=frontend allow_priority
//
//   name=LABEL       a label for logs (the key itself is never logged); default "key<line>"
//   allow_priority   the key may send priority > 0 (without it such a request is refused with
//                    PERMISSION_DENIED; priority <= 0 is always allowed)
//
// A key is at least 16 printable ASCII characters without spaces; duplicate keys are an error.
// Reload() re-reads the file (serve calls it on SIGHUP); a file with an error leaves the previous
// keys in force. With no keys file every call is admitted as the anonymous caller (owner "").
// Authenticate compares against every key in constant time and answers UNAUTHENTICATED without
// saying whether a key was missing, malformed or unknown. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server_context.h"

namespace tandem::coordinator {

struct ApiKey {
  std::string key;
  std::string name;
  bool allow_priority = false;
};

// Who is calling: `owner` scopes request ids (Abort acts only on the owner's own requests).
struct Caller {
  std::string owner;  // the key itself (in memory only); "" without keys
  std::string name;   // for logs
  bool allow_priority = true;
};

// Parses a keys file's text; errors name `source`, the line and the problem (never the key).
[[nodiscard]] absl::StatusOr<std::vector<ApiKey>> ParseApiKeys(absl::string_view text,
                                                               absl::string_view source);

class ApiKeys {
 public:
  // `path` empty: no keys, every call admitted.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ApiKeys>> FromFile(const std::string& path);

  bool enabled() const { return !path_.empty(); }
  // Re-reads the file; on error the previous keys stay in force. Returns the number of keys.
  [[nodiscard]] absl::StatusOr<size_t> Reload();

  // From the value of the `authorization` header ("" when absent).
  [[nodiscard]] absl::StatusOr<Caller> Authenticate(absl::string_view authorization) const;
  [[nodiscard]] absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context) const;

 private:
  explicit ApiKeys(std::string path) : path_(std::move(path)) {}
  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<ApiKey>> keys_ ABSL_GUARDED_BY(mu_);
};

// PERMISSION_DENIED naming the field when `priority` > 0 and the caller's key lacks
// allow_priority (lowering one's own priority is always allowed).
[[nodiscard]] absl::Status CheckPriority(const Caller& caller, int32_t priority);

// The value of the `authorization` header of a call ("" when absent).
absl::string_view AuthorizationOf(const grpc::ServerContextBase& context);

}  // namespace tandem::coordinator
