// ICU-backed pieces of the tokenizer: normalization forms and character classes.
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>

#include "absl/strings/str_cat.h"
#include "tokenizer/tokenizer_impl.h"

namespace tandem::tokenizer {

absl::Status Normalize(const std::vector<NormalizerKind>& kinds, absl::string_view text,
                       std::string* out) {
  std::string current(text);
  for (NormalizerKind kind : kinds) {
    UErrorCode error = U_ZERO_ERROR;
    const icu::Normalizer2* n = nullptr;
    switch (kind) {
      case NormalizerKind::kNfc:
        n = icu::Normalizer2::getNFCInstance(error);
        break;
      case NormalizerKind::kNfd:
        n = icu::Normalizer2::getNFDInstance(error);
        break;
      case NormalizerKind::kNfkc:
        n = icu::Normalizer2::getNFKCInstance(error);
        break;
      case NormalizerKind::kNfkd:
        n = icu::Normalizer2::getNFKDInstance(error);
        break;
    }
    if (U_FAILURE(error)) {
      return absl::InternalError(absl::StrCat("ICU normalizer unavailable: ", u_errorName(error)));
    }
    const icu::StringPiece piece(current.data(), static_cast<int32_t>(current.size()));
    if (n->isNormalizedUTF8(piece, error) && U_SUCCESS(error)) continue;
    error = U_ZERO_ERROR;
    std::string next;
    icu::StringByteSink<std::string> sink(&next);
    n->normalizeUTF8(0, piece, sink, nullptr, error);
    if (U_FAILURE(error)) {
      return absl::InvalidArgumentError(absl::StrCat("normalization failed: ", u_errorName(error)));
    }
    current.swap(next);
  }
  *out = std::move(current);
  return absl::OkStatus();
}

bool IsWordChar(char32_t c) {
  const auto u = static_cast<UChar32>(c);
  if (u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL)) {
    return true;
  }
  return (U_GET_GC_MASK(u) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

}  // namespace tandem::tokenizer
