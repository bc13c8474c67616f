// BPE word encoding: rank-ordered merges over a linked list of symbols with a min-heap, plus a
// bounded word cache.
#include <queue>
#include <vector>

#include "tokenizer/tokenizer_impl.h"

namespace tandem::tokenizer {
namespace {

constexpr size_t kCacheCapacity = 1 << 17;  // words
constexpr size_t kMaxCachedWordBytes = 256;

struct Symbol {
  int32_t id;
  int32_t prev, next;  // -1 at the ends
  bool alive;
};

struct Candidate {
  int32_t rank, pos, new_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

void TokenizerImpl::Bpe(absl::string_view word, std::vector<int32_t>* ids) const {
  if (word.size() > kMaxCachedWordBytes) {
    BpeUncached(word, ids);
    return;
  }
  {
    absl::MutexLock lock(&cache_mu);
    auto it = cache.find(word);
    if (it != cache.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = ids->size();
  BpeUncached(word, ids);
  std::vector<int32_t> result(ids->begin() + before, ids->end());
  absl::MutexLock lock(&cache_mu);
  if (cache.size() >= kCacheCapacity) cache.clear();
  cache.emplace(std::string(word), std::move(result));
}

void TokenizerImpl::BpeUncached(absl::string_view word, std::vector<int32_t>* ids) const {
  if (ignore_merges) {
    auto it = vocab.find(word);
    if (it != vocab.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  bool pending_unk = false;
  auto push = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  };
  size_t pos = 0;
  while (pos < word.size()) {
    size_t len = 1;
    const auto b0 = static_cast<uint8_t>(word[pos]);
    if (b0 >= 0xF0) {
      len = 4;
    } else if (b0 >= 0xE0) {
      len = 3;
    } else if (b0 >= 0xC0) {
      len = 2;
    }
    len = std::min(len, word.size() - pos);
    const absl::string_view ch = word.substr(pos, len);
    pos += len;
    auto it = vocab.find(ch);
    if (it != vocab.end()) {
      pending_unk = false;
      push(it->second);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_fallback_ids[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        pending_unk = false;
        for (char c : ch) push(byte_fallback_ids[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id >= 0) {
      if (!(fuse_unk && pending_unk)) push(unk_id);
      pending_unk = true;
    }
  }
  if (symbols.size() > 1) {
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    auto consider = [&](int32_t left) {
      const int32_t right = symbols[left].next;
      if (right < 0) return;
      auto it = merges.find(PairKey(symbols[left].id, symbols[right].id));
      if (it != merges.end()) heap.push({it->second.first, left, it->second.second});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
    while (!heap.empty()) {
      const Candidate top = heap.top();
      heap.pop();
      Symbol& left = symbols[top.pos];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      auto it = merges.find(PairKey(left.id, right.id));
      if (it == merges.end() || it->second.first != top.rank || it->second.second != top.new_id) {
        continue;  // stale: one side changed since this candidate was queued
      }
      left.id = top.new_id;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = top.pos;
      if (left.prev >= 0) consider(left.prev);
      consider(top.pos);
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) ids->push_back(s.id);
  }
}

}  // namespace tandem::tokenizer
