#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {

const std::array<std::string, 256>& ByteLevelChars() {
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> out;
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      AppendCodePoint(printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++),
                      &out[b]);
    }
    return out;
  }();
  return chars;
}

// ---- Added-token trie --------------------------------------------------------

void AddedTokenTrie::Insert(absl::string_view content, int32_t token_index) {
  if (content.empty()) return;
  int32_t node = 0;
  for (char c : content) {
    const auto b = static_cast<uint8_t>(c);
    int32_t next = -1;
    for (const auto& [byte, child] : nodes_[node].children) {
      if (byte == b) next = child;
    }
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(b, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  if (nodes_[node].token_index < 0) nodes_[node].token_index = token_index;
  first_byte_[static_cast<uint8_t>(content[0])] = true;
}

bool AddedTokenTrie::Find(absl::string_view text, size_t from, size_t* start, size_t* end,
                          int32_t* token_index) const {
  for (size_t i = from; i < text.size(); ++i) {
    if (!first_byte_[static_cast<uint8_t>(text[i])]) continue;
    int32_t node = 0;
    size_t best_end = 0;
    int32_t best = -1;
    for (size_t j = i; j < text.size(); ++j) {
      const auto b = static_cast<uint8_t>(text[j]);
      int32_t next = -1;
      for (const auto& [byte, child] : nodes_[node].children) {
        if (byte == b) next = child;
      }
      if (next < 0) break;
      node = next;
      if (nodes_[node].token_index >= 0) {
        best = nodes_[node].token_index;
        best_end = j + 1;
      }
    }
    if (best >= 0) {
      *start = i;
      *end = best_end;
      *token_index = best;
      return true;
    }
  }
  return false;
}

namespace {

char32_t LastCodePoint(absl::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return NextCodePoint(text, &start);
}

// HF AddedVocabulary::split_with_indices: leftmost-longest matches of `trie` in `text`, filtered
// by single_word and widened by lstrip/rstrip; calls on_piece(piece, token id or -1).
template <typename OnPiece>
absl::Status SplitOnAddedTokens(const AddedTokenTrie& trie, const std::vector<AddedToken>& tokens,
                                absl::string_view text, OnPiece&& on_piece) {
  size_t offset = 0;  // end of the previous emitted match
  size_t search = 0;
  size_t start = 0, end = 0;
  int32_t index = -1;
  while (!trie.empty() && trie.Find(text, search, &start, &end, &index)) {
    search = end;
    const AddedToken& token = tokens[index];
    if (token.single_word) {
      const bool word_before = start > 0 && IsWordChar(LastCodePoint(text.substr(0, start)));
      size_t p = end;
      const bool word_after = end < text.size() && IsWordChar(NextCodePoint(text, &p));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t prev = s - 1;
        while (prev > 0 && (static_cast<uint8_t>(text[prev]) & 0xC0) == 0x80) --prev;
        size_t q = prev;
        if (!IsUnicodeWhitespace(NextCodePoint(text, &q))) break;
        s = prev;
      }
      start = std::max(s, offset);
    }
    if (token.rstrip) {
      while (end < text.size()) {
        size_t q = end;
        if (!IsUnicodeWhitespace(NextCodePoint(text, &q))) break;
        end = q;
      }
      // The search resumes at the end of the token itself, not of the stripped spaces: as in
      // Hugging Face, whose matches are found before stripping, a following added token may
      // start inside them ("<eot>  world" with added " world" -> <eot>, " world").
    }
    if (offset < start) RETURN_IF_ERROR(on_piece(text.substr(offset, start - offset), -1));
    RETURN_IF_ERROR(on_piece(text.substr(start, end - start), token.id));
    offset = end;
  }
  if (offset < text.size()) RETURN_IF_ERROR(on_piece(text.substr(offset), -1));
  return absl::OkStatus();
}

}  // namespace

absl::Status TokenizerImpl::EncodeWithAddedTokens(absl::string_view text,
                                                  std::vector<int32_t>* ids) const {
  return SplitOnAddedTokens(raw_trie, added_tokens, text,
                            [&](absl::string_view piece, int32_t id) -> absl::Status {
                              if (id >= 0) {
                                ids->push_back(id);
                                return absl::OkStatus();
                              }
                              return EncodeNormalized(piece, ids);
                            });
}

absl::Status TokenizerImpl::EncodeNormalized(absl::string_view text,
                                             std::vector<int32_t>* ids) const {
  std::string normalized;
  if (!normalizers.empty()) {
    RETURN_IF_ERROR(Normalize(normalizers, text, &normalized));
    text = normalized;
  }
  return SplitOnAddedTokens(normalized_trie, added_tokens, text,
                            [&](absl::string_view piece, int32_t id) -> absl::Status {
                              if (id >= 0) {
                                ids->push_back(id);
                                return absl::OkStatus();
                              }
                              return PreTokenize(0, piece, ids);
                            });
}

absl::Status TokenizerImpl::PreTokenize(size_t step, absl::string_view piece,
                                        std::vector<int32_t>* ids) const {
  if (piece.empty()) return absl::OkStatus();
  if (step == pre_tokenizer.size()) {
    Bpe(piece, ids);
    return absl::OkStatus();
  }
  const PreTokenizerStep& s = pre_tokenizer[step];
  switch (s.kind) {
    case PreTokenizerStep::Kind::kPrefixSpace: {
      if (piece[0] == ' ') return PreTokenize(step + 1, piece, ids);
      return PreTokenize(step + 1, absl::StrCat(" ", piece), ids);
    }
    case PreTokenizerStep::Kind::kByteLevelMap: {
      const auto& chars = ByteLevelChars();
      std::string mapped;
      mapped.reserve(piece.size() * 2);
      for (char c : piece) mapped += chars[static_cast<uint8_t>(c)];
      return PreTokenize(step + 1, mapped, ids);
    }
    case PreTokenizerStep::Kind::kSplit:
      break;
  }
  absl::Status status;
  if (!s.invert &&
      (s.behavior == SplitBehavior::kIsolated || s.behavior == SplitBehavior::kRemoved)) {
    // Streaming path: no list of offsets for the common case.
    size_t prev = 0;
    RETURN_IF_ERROR(s.regex->FindAll(piece, [&](size_t start, size_t end) {
      if (!status.ok()) return;
      if (prev < start) status = PreTokenize(step + 1, piece.substr(prev, start - prev), ids);
      if (status.ok() && s.behavior == SplitBehavior::kIsolated) {
        status = PreTokenize(step + 1, piece.substr(start, end - start), ids);
      }
      prev = end;
    }));
    RETURN_IF_ERROR(status);
    return PreTokenize(step + 1, piece.substr(prev), ids);
  }
  struct Split {
    size_t start, end;
    bool is_match;
  };
  std::vector<Split> splits;
  size_t prev = 0;
  RETURN_IF_ERROR(s.regex->FindAll(piece, [&](size_t start, size_t end) {
    if (prev < start) splits.push_back({prev, start, false});
    splits.push_back({start, end, true});
    prev = end;
  }));
  if (prev < piece.size()) splits.push_back({prev, piece.size(), false});
  if (s.invert) {
    for (Split& split : splits) split.is_match = !split.is_match;
  }
  std::vector<Split> out;
  bool previous_match = false;
  switch (s.behavior) {
    case SplitBehavior::kRemoved:
      for (const Split& split : splits) {
        if (!split.is_match) out.push_back(split);
      }
      break;
    case SplitBehavior::kIsolated:
      out = splits;
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Split& split : splits) {
        if (split.is_match && !previous_match && !out.empty()) {
          out.back().end = split.end;
        } else {
          out.push_back(split);
        }
        previous_match = split.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = splits.rbegin(); it != splits.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().start = it->start;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < splits.size(); ++i) {
        if (i > 0 && splits[i].is_match == previous_match) {
          out.back().end = splits[i].end;
        } else {
          out.push_back(splits[i]);
        }
        previous_match = splits[i].is_match;
      }
      break;
  }
  for (const Split& split : out) {
    RETURN_IF_ERROR(PreTokenize(step + 1, piece.substr(split.start, split.end - split.start), ids));
  }
  return absl::OkStatus();
}

// ---- Tokenizer ---------------------------------------------------------------

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(absl::string_view text,
                                                       bool add_special_tokens) const {
  RETURN_IF_ERROR(ValidateUtf8(text));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids = impl_->prefix_ids;
  RETURN_IF_ERROR(impl_->EncodeWithAddedTokens(text, &ids));
  if (add_special_tokens) ids.insert(ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  return ids;
}

bool Tokenizer::AppendTokenBytes(int32_t id, bool skip_special_tokens, bool first,
                                 std::string* bytes) const {
  if (id < 0 || id >= vocab_size()) return false;
  const uint8_t flags = impl_->id_flags[id];
  if ((flags & 1) == 0) return false;
  if (skip_special_tokens && (flags & 2) != 0) return false;
  if (impl_->decoder == TokenizerImpl::Decoder::kNone && !first) bytes->push_back(' ');
  bytes->append(impl_->id_to_bytes[id]);
  return true;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (AppendTokenBytes(id, skip_special_tokens, first, &bytes)) first = false;
  }
  std::string text;
  text.reserve(bytes.size());
  AppendUtf8Lossy(bytes, /*final=*/true, &text);
  return text;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_flags.size()); }

std::optional<int32_t> Tokenizer::TokenToId(absl::string_view token) const {
  for (const AddedToken& added : impl_->added_tokens) {
    if (added.content == token) return added.id;
  }
  auto it = impl_->vocab.find(token);
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  if (id < 0 || id >= vocab_size() || (impl_->id_flags[id] & 1) == 0) return std::nullopt;
  return impl_->id_to_token[id];
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size() && (impl_->id_flags[id] & 2) != 0;
}

// ---- StreamingDetokenizer ----------------------------------------------------

std::string StreamingDetokenizer::Add(int32_t id) {
  if (tokenizer_.AppendTokenBytes(id, skip_special_tokens_, first_, &pending_)) first_ = false;
  std::string out;
  const size_t consumed = AppendUtf8Lossy(pending_, /*final=*/false, &out);
  pending_.erase(0, consumed);
  return out;
}

std::string StreamingDetokenizer::Finish() {
  std::string out;
  AppendUtf8Lossy(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace tandem::tokenizer
