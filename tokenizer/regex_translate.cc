#include "tokenizer/regex_translate.h"

#include <cctype>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace tandem::tokenizer {
namespace {

// General category -> extra class ranges (Unicode 15.0-16.0 assignments).
const absl::flat_hash_map<std::string, std::string>& Supplement() {
  static const auto* table = new absl::flat_hash_map<std::string, std::string>{
#include "tokenizer/unicode_supplement.inc"
  };
  return *table;
}

// Class body (no brackets) for a general category with its supplement.
std::string CategoryBody(const std::string& name) {
  auto it = Supplement().find(name);
  return absl::StrCat("\\p{", name, "}", it == Supplement().end() ? "" : it->second);
}

absl::Status Refuse(absl::string_view pattern, size_t at, absl::string_view construct,
                    absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "regex \"", pattern, "\": ", construct, " at offset ", at,
      " is not supported (its meaning differs between Hugging Face's Oniguruma and PCRE2: ", why,
      ")"));
}

}  // namespace

absl::StatusOr<std::string> TranslateOnigurumaPattern(absl::string_view p) {
  const std::string word = CategoryBody("L") + CategoryBody("M") + CategoryBody("Nd") + "\\p{Pc}";
  const std::string digit = CategoryBody("Nd");
  const std::string hex = "0-9A-Fa-f";
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  size_t class_start = 0;  // offset of the first item of the current class
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) {
        out += c;  // PCRE2 reports the trailing backslash
        break;
      }
      const char e = p[++i];
      // Class-body text for a positive set, and whether the escape is its negation.
      auto set = [&](const std::string& body, bool negated,
                     absl::string_view name) -> absl::Status {
        if (!in_class) {
          absl::StrAppend(&out, negated ? "[^" : "[", body, "]");
        } else if (!negated) {
          out += body;
        } else {
          return Refuse(p, i - 1, absl::StrCat(name, " inside a character class"),
                        "PCRE2 has no exact equivalent of the negated set within a class");
        }
        return absl::OkStatus();
      };
      switch (e) {
        case 's':
          out += "\\p{White_Space}";
          break;
        case 'S':
          out += "\\P{White_Space}";
          break;
        case 'h':
        case 'H':
          if (auto s = set(hex, e == 'H', e == 'H' ? "\\H" : "\\h"); !s.ok()) return s;
          break;
        case 'w':
        case 'W':
          if (auto s = set(word, e == 'W', "\\W"); !s.ok()) return s;
          break;
        case 'd':
        case 'D':
          if (auto s = set(digit, e == 'D', "\\D"); !s.ok()) return s;
          break;
        case 'b':
        case 'B':
          if (in_class) {  // [\b] is a backspace in both
            out += "\\b";
            break;
          }
          return Refuse(p, i - 1, absl::StrCat("\\", std::string(1, e)),
                        "word boundaries follow each engine's \\w");
        case 'u': {
          size_t n = 0;
          while (n < 4 && i + 1 + n < p.size() &&
                 std::isxdigit(static_cast<unsigned char>(p[i + 1 + n])))
            ++n;
          if (n != 4) return Refuse(p, i - 1, "\\u", "expected four hex digits");
          absl::StrAppend(&out, "\\x{", p.substr(i + 1, 4), "}");
          i += 4;
          break;
        }
        case 'p':
        case 'P': {
          std::string name;
          size_t end = i;
          if (i + 1 < p.size() && p[i + 1] == '{') {
            end = p.find('}', i + 2);
            if (end == absl::string_view::npos) {
              absl::StrAppend(&out, "\\", std::string(1, e));  // PCRE2 reports it
              break;
            }
            name = std::string(p.substr(i + 2, end - i - 2));
          } else if (i + 1 < p.size()) {
            end = i + 1;
            name = std::string(1, p[i + 1]);
          }
          bool negated = e == 'P';
          std::string bare = name;
          if (!bare.empty() && bare[0] == '^') {
            negated = !negated;
            bare.erase(0, 1);
          }
          if (!Supplement().contains(bare) || Supplement().at(bare).empty()) {
            absl::StrAppend(&out, "\\", std::string(1, e), p.substr(i + 1, end - i));
          } else if (auto s = set(CategoryBody(bare), negated, absl::StrCat("\\P{", bare, "}"));
                     !s.ok()) {
            return s;
          }
          i = end;
          break;
        }
        default:
          out += '\\';
          out += e;
          break;
      }
      continue;
    }
    if (in_class) {
      if (c == ']' && i > class_start) {
        in_class = false;
      } else if (c == '[') {
        return Refuse(p, i,
                      i + 1 < p.size() && p[i + 1] == ':' ? "a POSIX bracket [:name:]"
                                                          : "a nested class [...[...]...]",
                      "Oniguruma nests classes as unions, PCRE2 reads '[' literally");
      } else if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
        return Refuse(p, i, "&& in a character class",
                      "Oniguruma intersects the classes, PCRE2 reads \"&&\" literally");
      }
      out += c;
      continue;
    }
    switch (c) {
      case '[':
        in_class = true;
        out += c;
        if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
        class_start = i + 1;  // a ']' first is literal in both
        break;
      case '^':
      case '$':
        return Refuse(p, i, std::string(1, c),
                      "Oniguruma (Ruby syntax) anchors it at every line, PCRE2 at the subject");
      case '(':
        out += c;
        if (i + 2 < p.size() && p[i + 1] == '?' &&
            (std::isalpha(static_cast<unsigned char>(p[i + 2])) || p[i + 2] == '-') &&
            p[i + 2] != 'P') {
          return Refuse(p, i, absl::StrCat("the inline option group (?", std::string(1, p[i + 2])),
                        "(?i) folds multi-character sequences in Oniguruma only, and (?m) is "
                        "dot-all there");
        }
        break;
      default:
        out += c;
        break;
    }
  }
  return out;
}

}  // namespace tandem::tokenizer
