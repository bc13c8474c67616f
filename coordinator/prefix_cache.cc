#include "coordinator/prefix_cache.h"

#include <algorithm>

#include "core/logging.h"

namespace tandem::coordinator {

PrefixCache::PrefixCache(int32_t block_size, int32_t num_snapshots)
    : block_size_(std::max(1, block_size)), num_snapshots_(std::max(0, num_snapshots)) {
  for (int32_t i = 0; i < num_snapshots_; ++i) free_snapshots_.insert(free_snapshots_.end(), i);
}

PrefixCache::Match PrefixCache::Lookup(const std::vector<int32_t>& tokens, int64_t limit) const {
  Match m;
  limit = std::min<int64_t>(limit, static_cast<int64_t>(tokens.size()));
  const Node* node = &root_;
  std::vector<int32_t> key(static_cast<size_t>(block_size_));
  for (int64_t begin = 0; begin + block_size_ <= limit; begin += block_size_) {
    std::copy(tokens.begin() + begin, tokens.begin() + begin + block_size_, key.begin());
    auto it = node->children_.find(key);
    if (it == node->children_.end()) break;
    node = it->second.get();
    m.path.push_back(it->second.get());
    if (node->snapshot_ >= 0) {
      m.tokens = node->end_;
      m.snapshot = node->snapshot_;
    }
  }
  m.shared_tokens = static_cast<int64_t>(m.path.size()) * block_size_;
  m.path.resize(static_cast<size_t>(m.tokens / block_size_));
  return m;
}

void PrefixCache::RecordAdmission(int64_t tokens, int64_t reused) {
  ++counters_.lookups;
  counters_.lookup_tokens += tokens;
  if (reused > 0) {
    ++counters_.hits;
    counters_.cached_tokens += reused;
  }
}

void PrefixCache::Unlist(Node* node) {
  evictable_leaves_.erase({node->last_use_, node});
  idle_snapshots_.erase({node->last_use_, node});
}

void PrefixCache::List(Node* node) {
  if (node->users_ > 0 || node == &root_) return;
  if (node->children_.empty()) evictable_leaves_.insert({node->last_use_, node});
  if (node->snapshot_ >= 0) idle_snapshots_.insert({node->last_use_, node});
}

void PrefixCache::Acquire(Node* node) {
  TANDEM_CHECK(node != nullptr && node != &root_);
  if (node->users_ == 0) {
    Unlist(node);
    --unused_nodes_;
  }
  ++node->users_;
  node->last_use_ = ++clock_;
}

void PrefixCache::Release(Node* node) {
  TANDEM_CHECK(node != nullptr && node->users_ > 0);
  --node->users_;
  node->last_use_ = ++clock_;
  if (node->users_ == 0) {
    ++unused_nodes_;
    List(node);
  }
}

PrefixCache::Node* PrefixCache::Insert(Node* parent, const std::vector<int32_t>& tokens,
                                       int64_t begin, int32_t block) {
  if (parent == nullptr) parent = &root_;
  TANDEM_CHECK(begin == parent->end_ && begin + block_size_ <= static_cast<int64_t>(tokens.size()));
  std::vector<int32_t> key(tokens.begin() + begin, tokens.begin() + begin + block_size_);
  auto it = parent->children_.find(key);
  if (it != parent->children_.end()) {
    Acquire(it->second.get());
    return it->second.get();
  }
  auto node = std::make_unique<Node>();
  node->parent_ = parent;
  node->tokens_ = key;
  node->block_ = block;
  node->end_ = begin + block_size_;
  Node* raw = node.get();
  // The parent stops being a leaf (it has a user: the caller, so it is in no LRU set anyway).
  if (parent != &root_) evictable_leaves_.erase({parent->last_use_, parent});
  parent->children_.emplace(std::move(key), std::move(node));
  ++num_nodes_;
  ++unused_nodes_;  // Acquire below counts it back
  Acquire(raw);
  return raw;
}

std::optional<int32_t> PrefixCache::AllocateSnapshot() {
  if (!free_snapshots_.empty()) {
    const int32_t id = *free_snapshots_.begin();
    free_snapshots_.erase(free_snapshots_.begin());
    return id;
  }
  if (idle_snapshots_.empty()) return std::nullopt;
  Node* victim = idle_snapshots_.begin()->second;
  idle_snapshots_.erase(idle_snapshots_.begin());
  const int32_t id = victim->snapshot_;
  victim->snapshot_ = -1;
  ++counters_.evicted_snapshots;
  return id;
}

void PrefixCache::AttachSnapshot(Node* node, int32_t id) {
  TANDEM_CHECK(id >= 0 && id < num_snapshots_);
  ++counters_.snapshots_saved;
  if (node->snapshot_ >= 0) {
    free_snapshots_.insert(id);
    return;
  }
  Unlist(node);
  node->snapshot_ = id;
  List(node);
}

void PrefixCache::FreeSnapshot(int32_t id) {
  TANDEM_CHECK(id >= 0 && id < num_snapshots_);
  free_snapshots_.insert(id);
}

void PrefixCache::Drop(Node* node, std::vector<int32_t>* blocks) {
  TANDEM_CHECK(node->users_ == 0 && node->children_.empty());
  Unlist(node);
  if (node->snapshot_ >= 0) {
    free_snapshots_.insert(node->snapshot_);
    ++counters_.evicted_snapshots;
  }
  blocks->push_back(node->block_);
  --num_nodes_;
  --unused_nodes_;
  Node* parent = node->parent_;
  const std::vector<int32_t> key = node->tokens_;
  parent->children_.erase(key);  // destroys `node`
  if (parent != &root_ && parent->users_ == 0 && parent->children_.empty()) {
    evictable_leaves_.insert({parent->last_use_, parent});
  }
}

std::vector<int32_t> PrefixCache::EvictBlocks(int64_t count) {
  std::vector<int32_t> blocks;
  while (static_cast<int64_t>(blocks.size()) < count && !evictable_leaves_.empty()) {
    Drop(evictable_leaves_.begin()->second, &blocks);
  }
  counters_.evicted_blocks += static_cast<int64_t>(blocks.size());
  return blocks;
}

std::vector<int32_t> PrefixCache::Clear() {
  TANDEM_CHECK(unused_nodes_ == num_nodes_);  // no sequence uses a node
  std::vector<int32_t> blocks;
  std::vector<Node*> stack;
  for (auto& [key, child] : root_.children_) stack.push_back(child.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    blocks.push_back(n->block_);
    for (auto& [key, child] : n->children_) stack.push_back(child.get());
  }
  root_.children_.clear();
  evictable_leaves_.clear();
  idle_snapshots_.clear();
  free_snapshots_.clear();
  for (int32_t i = 0; i < num_snapshots_; ++i) free_snapshots_.insert(free_snapshots_.end(), i);
  num_nodes_ = 0;
  unused_nodes_ = 0;
  return blocks;
}

PrefixCacheStats PrefixCache::Stats() const {
  PrefixCacheStats s = counters_;
  s.num_snapshots = num_snapshots_;
  s.used_snapshots = num_snapshots_ - static_cast<int64_t>(free_snapshots_.size());
  s.cached_blocks = num_nodes_;
  s.evictable_blocks = unused_nodes_;
  return s;
}

}  // namespace tandem::coordinator
