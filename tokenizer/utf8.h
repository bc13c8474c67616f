// UTF-8 helpers for the tokenizer: validation, lossy decoding with U+FFFD, and the Unicode
// White_Space property.
//
// Lossy decoding follows the "maximal subpart" practice (Unicode §3.9, WHATWG, Rust's
// String::from_utf8_lossy, Python's bytes.decode(errors="replace")): every maximal prefix of a
// well-formed sequence that cannot be completed, and every byte that cannot start one, becomes
// one U+FFFD. Stateless and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem::tokenizer {

// Ok when `text` is well-formed UTF-8; otherwise InvalidArgument naming the byte offset and value
// of the first ill-formed sequence.
[[nodiscard]] absl::Status ValidateUtf8(absl::string_view text);

// Appends `bytes` to `out`, replacing ill-formed sequences with U+FFFD. When `final` is false, a
// trailing incomplete (but so far well-formed) sequence is not consumed; the return value is the
// number of bytes consumed (always bytes.size() when `final`).
size_t AppendUtf8Lossy(absl::string_view bytes, bool final, std::string* out);

// Decodes one code point at `text[*pos]` of well-formed UTF-8 and advances *pos.
char32_t NextCodePoint(absl::string_view text, size_t* pos);

// Rust's char::is_whitespace (Unicode White_Space).
bool IsUnicodeWhitespace(char32_t c);

// Appends the UTF-8 encoding of `c`.
void AppendCodePoint(char32_t c, std::string* out);

}  // namespace tandem::tokenizer
