// Internal state of a loaded Tokenizer (tokenizer.h), shared by the loader (tokenizer_loader.cc)
// and the encode/decode paths (tokenizer.cc, bpe.cc). Not a public API.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "tokenizer/regex.h"

namespace tandem::tokenizer {

enum class NormalizerKind { kNfc, kNfd, kNfkc, kNfkd };

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// One step of the flattened pre-tokenizer pipeline.
struct PreTokenizerStep {
  enum class Kind { kSplit, kPrefixSpace, kByteLevelMap } kind;
  std::unique_ptr<Regex> regex;  // kSplit
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
};

struct AddedToken {
  int32_t id = 0;
  std::string content;  // normalized content for normalized tokens
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Byte trie over added-token contents for leftmost-longest matching.
class AddedTokenTrie {
 public:
  void Insert(absl::string_view content, int32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Leftmost-longest match at or after `from`: sets *start, *end, *token_index.
  bool Find(absl::string_view text, size_t from, size_t* start, size_t* end,
            int32_t* token_index) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;
    int32_t token_index = -1;
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
  std::array<bool, 256> first_byte_{};
};

struct TokenizerImpl {
  // BPE model.
  absl::flat_hash_map<std::string, int32_t> vocab;
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left,right) -> (rank, id)
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::array<int32_t, 256> byte_fallback_ids{};  // -1 where <0xXX> is missing

  std::vector<NormalizerKind> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizer;

  std::vector<AddedToken> added_tokens;
  AddedTokenTrie raw_trie;         // normalized == false
  AddedTokenTrie normalized_trie;  // normalized == true

  std::vector<int32_t> prefix_ids, suffix_ids;  // post-processor around the sequence

  enum class Decoder { kNone, kByteLevel } decoder = Decoder::kNone;
  std::vector<std::string> id_to_token;  // "" where no token
  std::vector<std::string> id_to_bytes;  // decoder output per id (ByteLevel: un-mapped bytes)
  std::vector<uint8_t> id_flags;         // bit 0: exists, bit 1: special

  // Bounded word cache: word -> ids.
  mutable absl::Mutex cache_mu;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache;

  absl::Status EncodeWithAddedTokens(absl::string_view text, std::vector<int32_t>* ids) const;
  absl::Status EncodeNormalized(absl::string_view text, std::vector<int32_t>* ids) const;
  absl::Status PreTokenize(size_t step, absl::string_view piece, std::vector<int32_t>* ids) const;
  void Bpe(absl::string_view word, std::vector<int32_t>* ids) const;
  void BpeUncached(absl::string_view word, std::vector<int32_t>* ids) const;
};

// Maps each byte to the printable code point GPT-2's byte-level BPE uses for it (as UTF-8).
const std::array<std::string, 256>& ByteLevelChars();

// Applies `kinds` in order with ICU.
absl::Status Normalize(const std::vector<NormalizerKind>& kinds, absl::string_view text,
                       std::string* out);

// Rust regex `\w` (Alphabetic, M, Nd, Pc, Join_Control).
bool IsWordChar(char32_t c);

}  // namespace tandem::tokenizer
