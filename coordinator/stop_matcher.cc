#include "coordinator/stop_matcher.h"

#include <algorithm>

namespace tandem::coordinator {

StopMatcher::StopMatcher(std::vector<std::string> stops, bool include_stop)
    : stops_(std::move(stops)), include_stop_(include_stop) {
  for (const auto& s : stops_) max_len_ = std::max(max_len_, s.size());
}

std::string StopMatcher::Append(const std::string& delta) {
  if (matched_) return "";
  pending_ += delta;
  if (stops_.empty()) {
    std::string out;
    out.swap(pending_);
    return out;
  }
  // The stop string that completes first (smallest end); at the same end, the longest.
  size_t best = std::string::npos;
  size_t best_len = 0;
  size_t best_end = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    const size_t at = pending_.find(s);
    if (at == std::string::npos) continue;
    const size_t end = at + s.size();
    if (end < best_end || (end == best_end && s.size() > best_len)) {
      best = at;
      best_len = s.size();
      best_end = end;
      matched_ = s;
    }
  }
  if (best != std::string::npos) {
    std::string out = pending_.substr(0, include_stop_ ? best + best_len : best);
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    const size_t upto = std::min(s.size() - 1, pending_.size());
    for (size_t k = upto; k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::Finish() {
  if (matched_) return "";
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace tandem::coordinator
