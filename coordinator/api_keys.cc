#include "coordinator/api_keys.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "auth/group_identity.h"

namespace tandem::coordinator {
namespace {

constexpr size_t kMinKeyBytes = 16;
constexpr absl::string_view kBearer = "Bearer ";

absl::Status Unauthenticated() {
  return absl::UnauthenticatedError(
      "this server requires an API key: send the metadata 'authorization: Bearer <key>'");
}

}  // namespace

absl::StatusOr<std::vector<ApiKey>> ParseApiKeys(absl::string_view text, absl::string_view source) {
  std::vector<ApiKey> keys;
  std::set<std::string> seen;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const auto where = [&] { return absl::StrCat(source, ":", line_no); };
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    ApiKey key;
    key.key = std::string(words[0]);
    key.name = absl::StrCat("key", line_no);
    if (key.key.size() < kMinKeyBytes) {
      return absl::InvalidArgumentError(absl::StrCat(where(), ": the key has ", key.key.size(),
                                                     " characters, fewer than the minimum ",
                                                     kMinKeyBytes));
    }
    for (char c : key.key) {
      if (c < 0x21 || c > 0x7e) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), ": a key must be printable ASCII without spaces"));
      }
    }
    for (size_t i = 1; i < words.size(); ++i) {
      if (words[i] == "allow_priority") {
        key.allow_priority = true;
      } else if (absl::ConsumePrefix(&words[i], "name=") && !words[i].empty()) {
        key.name = std::string(words[i]);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(where(), ": unknown setting '", words[i],
                                                       "' (known: name=LABEL, allow_priority)"));
      }
    }
    if (!seen.insert(key.key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), ": the key of '", key.name, "' appears twice"));
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

absl::StatusOr<std::unique_ptr<ApiKeys>> ApiKeys::FromFile(const std::string& path) {
  auto keys = std::unique_ptr<ApiKeys>(new ApiKeys(path));
  if (!path.empty()) {
    absl::StatusOr<size_t> n = keys->Reload();
    if (!n.ok()) return n.status();
  }
  return keys;
}

absl::StatusOr<size_t> ApiKeys::Reload() {
  if (path_.empty()) return 0;
  std::ifstream f(path_, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("--api-keys-file: cannot read '", path_, "'"));
  std::stringstream ss;
  ss << f.rdbuf();
  absl::StatusOr<std::vector<ApiKey>> parsed =
      ParseApiKeys(ss.str(), absl::StrCat("--api-keys-file ", path_));
  if (!parsed.ok()) return parsed.status();
  const size_t n = parsed->size();
  auto keys = std::make_shared<const std::vector<ApiKey>>(std::move(*parsed));
  absl::MutexLock lock(&mu_);
  keys_ = std::move(keys);
  return n;
}

absl::StatusOr<Caller> ApiKeys::Authenticate(absl::string_view authorization) const {
  if (!enabled()) return Caller{};
  std::shared_ptr<const std::vector<ApiKey>> keys;
  {
    absl::MutexLock lock(&mu_);
    keys = keys_;
  }
  if (!absl::ConsumePrefix(&authorization, kBearer) || keys == nullptr) return Unauthenticated();
  const ApiKey* match = nullptr;
  for (const ApiKey& k : *keys) {  // every key, each in constant time
    if (auth::ConstantTimeEquals(authorization, k.key)) match = &k;
  }
  if (match == nullptr) return Unauthenticated();
  return Caller{match->key, match->name, match->allow_priority};
}

absl::StatusOr<Caller> ApiKeys::Authenticate(const grpc::ServerContextBase& context) const {
  return Authenticate(AuthorizationOf(context));
}

absl::Status CheckPriority(const Caller& caller, int32_t priority) {
  if (priority <= 0 || caller.allow_priority) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("priority: ", priority, " needs an API key with allow_priority (this key may ",
                   "use priority <= 0)"));
}

absl::string_view AuthorizationOf(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace tandem::coordinator
