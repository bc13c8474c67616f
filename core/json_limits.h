// Limits for untrusted JSON (tokenizer.json, config.json, safetensors headers), checked on the raw
// text before nlohmann parses it: code that walks, copies or prints a parsed value (dump(),
// operator==, the loaders' own recursion) recurses once per nesting level, so a 10^5-deep `[[[[`
// would overflow the stack after parsing succeeded.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem::core {

// Hugging Face `tokenizers` (serde_json) refuses JSON nested deeper than 128 levels.
inline constexpr int kMaxJsonDepth = 128;

// OK when no object/array in `text` nests deeper than `max_depth` levels (brackets inside strings
// are skipped). The error names the limit and the byte offset of the first bracket past it. Does
// not validate the JSON otherwise: the parser does that. O(size), no allocation.
[[nodiscard]] absl::Status CheckJsonDepth(absl::string_view text, int max_depth = kMaxJsonDepth);

// OK when `size` <= `limit`; the error names `what`, the size and the limit.
[[nodiscard]] absl::Status CheckJsonSize(size_t size, size_t limit, absl::string_view what);

}  // namespace tandem::core
