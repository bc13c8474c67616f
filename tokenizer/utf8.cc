#include "tokenizer/utf8.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::tokenizer {
namespace {

// Length of the well-formed sequence starting at bytes[i], or:
//   0 with *bad = k (k >= 1): bytes [i, i+k) are one maximal ill-formed subpart;
//   0 with *bad = 0: a well-formed prefix that runs into the end of `bytes`.
size_t SequenceLength(absl::string_view bytes, size_t i, size_t* bad) {
  const auto b0 = static_cast<uint8_t>(bytes[i]);
  if (b0 < 0x80) return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= bytes.size()) {
      *bad = 0;
      return 0;
    }
    const auto b = static_cast<uint8_t>(bytes[i + k]);
    const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      *bad = k;
      return 0;
    }
  }
  return need;
}

}  // namespace

absl::Status ValidateUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t bad = 0;
    const size_t n = SequenceLength(text, i, &bad);
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("text is not valid UTF-8: %s sequence at byte offset %d (byte 0x%02X)",
                          bad == 0 ? "truncated" : "ill-formed", i, static_cast<uint8_t>(text[i])));
    }
    i += n;
  }
  return absl::OkStatus();
}

size_t AppendUtf8Lossy(absl::string_view bytes, bool final, std::string* out) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t start = i;
    while (i < bytes.size() && static_cast<uint8_t>(bytes[i]) < 0x80) ++i;
    size_t bad = 0;
    while (i < bytes.size()) {
      const size_t n = SequenceLength(bytes, i, &bad);
      if (n == 0) break;
      i += n;
    }
    out->append(bytes.data() + start, i - start);
    if (i >= bytes.size()) break;
    if (bad == 0) {  // truncated at the end of `bytes`
      if (!final) return i;
      out->append("\xEF\xBF\xBD");
      return bytes.size();
    }
    out->append("\xEF\xBF\xBD");
    i += bad;
  }
  return bytes.size();
}

char32_t NextCodePoint(absl::string_view text, size_t* pos) {
  const auto b0 = static_cast<uint8_t>(text[*pos]);
  if (b0 < 0x80) {
    ++*pos;
    return b0;
  }
  size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t c = b0 & (0x7F >> n);
  for (size_t k = 1; k < n && *pos + k < text.size(); ++k) {
    c = (c << 6) | (static_cast<uint8_t>(text[*pos + k]) & 0x3F);
  }
  *pos += n;
  return c;
}

bool IsUnicodeWhitespace(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

void AppendCodePoint(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace tandem::tokenizer
