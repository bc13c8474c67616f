// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the tokenizer's Split
// pre-tokenizers. Immutable after construction: FindAll may be called from many threads.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::tokenizer {

class Regex {
 public:
  // `literal` matches `pattern` as a plain string.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Regex>> Compile(absl::string_view pattern,
                                                                      bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(start, end) for each non-overlapping, non-empty match in `subject` (valid
  // UTF-8), left to right. Fails only on a PCRE2 runtime error (e.g. resource limits).
  [[nodiscard]] absl::Status FindAll(absl::string_view subject,
                                     const std::function<void(size_t, size_t)>& on_match) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace tandem::tokenizer
