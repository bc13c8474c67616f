// Tokenizer: a Hugging Face `tokenizer.json` (BPE, byte-level or not) loaded into C++, giving the
// same ids as HF `tokenizers` for Encode and the same text for Decode.
//
// Supported tokenizer.json components (anything else is InvalidArgument naming its JSON path):
//   model          BPE: vocab, merges ("a b" strings or ["a", "b"] pairs), unk_token, fuse_unk,
//                  byte_fallback, ignore_merges (dropout must be null, no subword prefix/suffix).
//   normalizer     null, NFC, NFD, NFKC, NFKD (ICU), Sequence of these.
//   pre_tokenizer  null, Split (Regex or String pattern; behaviours Removed, Isolated,
//                  MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel
//                  (add_prefix_space, use_regex with the GPT-2 pattern), Sequence of these.
//   added_tokens   special or not, with single_word, lstrip, rstrip, normalized.
//   post_processor null, TemplateProcessing (single), ByteLevel, BertProcessing, RobertaProcessing,
//                  Sequence of these; applied by Encode(text, add_special_tokens=true).
//   decoder        null (tokens joined by " "), ByteLevel.
// Input text must be valid UTF-8 (HF takes Rust &str / Python str, so it never sees invalid
// bytes): Encode returns InvalidArgument naming the byte offset of the first ill-formed sequence.
// Decode skips ids that name no token (as HF does) and replaces ill-formed UTF-8 produced by
// byte-level tokens with U+FFFD per maximal subpart (HF's String::from_utf8_lossy).
//
// Thread safety: a loaded Tokenizer is immutable apart from an internal, mutex-guarded word
// cache; Encode and Decode may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace tandem::tokenizer {

struct TokenizerImpl;

class Tokenizer {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(absl::string_view json);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text` (valid UTF-8). Memory stays proportional to the text and the ids: the
  // text is processed piece by piece and the word cache is bounded.
  [[nodiscard]] absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                                            bool add_special_tokens) const;

  // The text of `ids`; never fails (unknown ids are skipped, bad UTF-8 becomes U+FFFD).
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const;

  // 1 + the largest id of the model vocabulary and the added tokens.
  int32_t vocab_size() const;
  std::optional<int32_t> TokenToId(absl::string_view token) const;
  std::optional<std::string> IdToToken(int32_t id) const;
  bool IsSpecial(int32_t id) const;

  // The bytes that `id` contributes to Decode's output before UTF-8 repair; false for unknown or
  // skipped ids. `first` is whether it is the first emitted token (the null decoder joins with "
  // ").
  bool AppendTokenBytes(int32_t id, bool skip_special_tokens, bool first, std::string* bytes) const;

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
  std::unique_ptr<TokenizerImpl> impl_;
};

// Turns ids arriving one at a time into text deltas. The concatenation of every Add() result
// followed by Finish() equals tokenizer.Decode(all ids, skip_special_tokens); each delta is valid
// UTF-8 and never splits a character: bytes of an incomplete trailing sequence are held back until
// the next id completes it. An ill-formed sequence becomes U+FFFD as soon as it is known to be
// ill-formed (the next byte cannot continue it); Finish() flushes a held-back incomplete tail as
// one U+FFFD, exactly as Decode does at the end of the text. Not thread-safe; the tokenizer must
// outlive it.
class StreamingDetokenizer {
 public:
  StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

  std::string Add(int32_t id);
  std::string Finish();
  // Bytes held back waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace tandem::tokenizer
