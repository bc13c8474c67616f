#include "core/json_limits.h"

#include "absl/strings/str_cat.h"

namespace tandem::core {

absl::Status CheckJsonDepth(absl::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          return absl::InvalidArgumentError(absl::StrCat("JSON nesting exceeds the limit of ",
                                                         max_depth, " levels (at byte ", i, ")"));
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;  // unbalanced brackets are the parser's error to report
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckJsonSize(size_t size, size_t limit, absl::string_view what) {
  if (size <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is ", size, " bytes, over the limit of ", limit, " bytes"));
}

}  // namespace tandem::core
