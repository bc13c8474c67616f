#include "coordinator/loading_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tandem::coordinator {

std::string LoadingStatus::Reason() const {
  return absl::StrCat("loading the model (", ranks_loaded, " of ", ranks_total, " ranks loaded",
                      workers_up ? "" : "; waiting for the workers to start", ")");
}

LoadingState::LoadingState(int32_t ranks_total) {
  status_.ranks_total = ranks_total;
  status_.since = absl::Now();
}

void LoadingState::WorkersUp() {
  std::lock_guard<std::mutex> lock(mu_);
  status_.workers_up = true;
}

void LoadingState::RankLoaded(int64_t checkpoint_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  status_.workers_up = true;
  status_.ranks_loaded = std::min(status_.ranks_loaded + 1, status_.ranks_total);
  status_.bytes_loaded += checkpoint_bytes;
}

LoadingStatus LoadingState::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

}  // namespace tandem::coordinator
