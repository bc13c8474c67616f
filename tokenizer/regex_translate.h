// Translates a tokenizer.json regex, written for Hugging Face's Oniguruma (Ruby syntax, Unicode
// 16 tables), into a PCRE2 10.42 pattern (UTF + UCP, Unicode 14 tables) that matches the same
// strings, or refuses it naming the construct whose meaning differs and is not translated.
//
// Translated exactly:
//   \s \S        Oniguruma: White_Space (PCRE2's \s adds U+180E)  -> \p{White_Space}
//   \h \H        Oniguruma: hex digit (PCRE2: horizontal space)    -> [0-9A-Fa-f]
//   \w \W \d \D  Oniguruma: L|M|Nd|Pc and Nd                       -> explicit property classes
//   \p{X} \P{X}  general categories gain the code points Unicode 15.0-16.0 assigned to them
//                (tokenizer/unicode_supplement.inc)
//   \uHHHH       -> \x{HHHH}
// Refused: ^ and $ (Ruby: line anchors), \b \B, inline options such as (?i) (multi-character case
// folding) and (?m) (Ruby: dot-all), && and nested [...] or POSIX [:name:] inside a class, and a
// negated form (\S excepted) inside a class.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::tokenizer {

[[nodiscard]] absl::StatusOr<std::string> TranslateOnigurumaPattern(absl::string_view pattern);

}  // namespace tandem::tokenizer
