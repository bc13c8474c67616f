#include "comm/rendezvous_store.h"

#include "core/status.h"

namespace tandem::comm {

absl::Status RendezvousStore::Wait(const std::vector<std::string>& keys, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (const std::string& key : keys) {
    RETURN_IF_ERROR(Get(key, std::max(deadline - absl::Now(), absl::ZeroDuration())));
  }
  return absl::OkStatus();
}

}  // namespace tandem::comm
