#include "auth/group_identity.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "auth/random.h"

namespace tandem::auth {
namespace {

absl::Status CheckSecret(absl::string_view secret, absl::string_view source) {
  if (secret.size() < kMinSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the group secret has ", secret.size(),
                                                   " bytes, fewer than the minimum ",
                                                   kMinSecretBytes));
  }
  for (char c : secret) {
    if (c < 0x21 || c > 0x7e) {
      // Metadata values must be printable ASCII; whitespace inside would be ambiguous.
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the group secret must be printable ASCII without spaces"));
    }
  }
  return absl::OkStatus();
}

absl::string_view Value(const grpc::ServerContextBase& context, absl::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

absl::StatusOr<std::string> GenerateGroupSecret() { return RandomHex(32); }

absl::StatusOr<std::string> LoadGroupSecret(const std::string& file) {
  if (!file.empty()) {
    std::ifstream f(file, std::ios::binary);
    if (!f) {
      return absl::NotFoundError(absl::StrCat("--group-secret-file: cannot read '", file, "'"));
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::string secret(absl::StripAsciiWhitespace(ss.str()));
    if (auto s = CheckSecret(secret, absl::StrCat("--group-secret-file '", file, "'")); !s.ok()) {
      return s;
    }
    return secret;
  }
  const char* env = std::getenv(kGroupSecretEnv);
  if (env == nullptr || *env == '\0') return std::string();
  std::string secret(absl::StripAsciiWhitespace(env));
  if (auto s = CheckSecret(secret, kGroupSecretEnv); !s.ok()) return s;
  return secret;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

void GroupCredentials::AttachTo(grpc::ClientContext* context) const {
  context->AddMetadata(kGroupSecretKey, secret);
  context->AddMetadata(kCoordinatorKey, coordinator_id);
  context->AddMetadata(kEpochKey, absl::StrCat(epoch));
}

CallIdentity IdentityOf(const grpc::ServerContextBase& context) {
  CallIdentity id;
  id.secret = Value(context, kGroupSecretKey);
  id.coordinator_id = Value(context, kCoordinatorKey);
  const absl::string_view epoch = Value(context, kEpochKey);
  id.has_epoch = !epoch.empty() && absl::SimpleAtoi(epoch, &id.epoch);
  return id;
}

}  // namespace tandem::auth
