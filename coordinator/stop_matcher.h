// StopMatcher: finds stop strings in streamed text, across token boundaries.
//
// Text arrives as deltas (from the streaming detokenizer). Append returns the text that is now safe
// to emit: everything except a tail that could still be the beginning of a stop string. When a
// stop string completes, Append returns the text before it (plus the stop string itself when
// include_stop is set), matched() turns true, and later calls return nothing. Finish() returns
// the held-back tail when the sequence ends for another reason. The stop string that completes
// first in the text wins (smallest end); among those ending at the same place, the longest.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace tandem::coordinator {

class StopMatcher {
 public:
  StopMatcher(std::vector<std::string> stops, bool include_stop);

  std::string Append(const std::string& delta);
  std::string Finish();

  bool matched() const { return matched_.has_value(); }
  // The stop string that matched (empty when none).
  std::string matched_stop() const { return matched_.value_or(""); }

 private:
  std::vector<std::string> stops_;
  bool include_stop_;
  size_t max_len_ = 0;
  std::string pending_;  // text not yet emitted
  std::optional<std::string> matched_;
};

}  // namespace tandem::coordinator
