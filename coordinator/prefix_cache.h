// PrefixCache: the coordinator's prefix index for a hybrid model (DESIGN.md §3).
//
// A tree over full KV blocks: a node is one block of block_size prompt tokens, reached from the
// root by the blocks before it, so a node stands for exactly one token prefix (children are keyed
// by their tokens, compared exactly: no hash can alias two prefixes). A node holds the KV block
// that contains its positions (full, hence immutable: it is shared by reference, never copied)
// and may hold a snapshot: the id of a snapshot-pool entry in which every worker saved its slice
// of the SSM + conv state at the node's end position. A Mamba layer's state summarises the whole
// prefix, so a prefix is reusable only up to a node that has a snapshot.
//
// Users: a sequence that uses a node's block (it matched it, or inserted it) is a user of that
// node and of every node above it. Nodes without users are evictable: LRU leaves first, only when
// the block allocator runs short (EvictBlocks). Snapshots of nodes without users are evicted LRU
// when a save needs an entry and none is free (AllocateSnapshot). Dropping a node drops its
// snapshot. Not thread-safe: owned by the scheduler thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace tandem::coordinator {

struct PrefixCacheStats {
  int64_t num_snapshots = 0;
  int64_t used_snapshots = 0;
  int64_t cached_blocks = 0;     // blocks the tree holds
  int64_t evictable_blocks = 0;  // of which no sequence uses (reclaimable)
  int64_t lookups = 0;
  int64_t hits = 0;
  int64_t lookup_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t evicted_blocks = 0;
  int64_t evicted_snapshots = 0;
  int64_t snapshots_saved = 0;
};

class PrefixCache {
 public:
  class Node {
   public:
    int32_t block() const { return block_; }
    int64_t end() const { return end_; }  // the position after this node's block
    int32_t snapshot() const { return snapshot_; }
    int32_t users() const { return users_; }

   private:
    friend class PrefixCache;
    Node* parent_ = nullptr;
    std::vector<int32_t> tokens_;
    int32_t block_ = -1;
    int64_t end_ = 0;
    int32_t users_ = 0;
    int32_t snapshot_ = -1;
    uint64_t last_use_ = 0;
    absl::flat_hash_map<std::vector<int32_t>, std::unique_ptr<Node>> children_;
  };

  // What a sequence may reuse: `path` covers [0, tokens) (one node per block, root excluded) and
  // the last node's snapshot holds the state at `tokens`. `shared_tokens` >= tokens is how far the
  // KV blocks alone matched (where this prompt leaves the tree: a branch point worth a snapshot).
  struct Match {
    int64_t tokens = 0;
    int32_t snapshot = -1;
    std::vector<Node*> path;
    int64_t shared_tokens = 0;
  };

  PrefixCache(int32_t block_size, int32_t num_snapshots);
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  int32_t block_size() const { return block_size_; }

  // The longest reusable prefix of tokens[0, limit) (changes nothing).
  Match Lookup(const std::vector<int32_t>& tokens, int64_t limit) const;
  // Hit statistics: an admission that needed `tokens` positions reused `reused` of them.
  void RecordAdmission(int64_t tokens, int64_t reused);

  // Makes the caller a user of `node` (which stops it being evicted) / ends that.
  void Acquire(Node* node);
  void Release(Node* node);

  // Offers the block of tokens[begin, begin + block_size), whose KV is `block`, as the child of
  // `parent` (nullptr: the root). When no such child exists the tree takes the block; otherwise
  // the existing node stays and the caller keeps its block. Either way the caller becomes a user
  // of the returned node.
  Node* Insert(Node* parent, const std::vector<int32_t>& tokens, int64_t begin, int32_t block);

  // A free snapshot-pool entry: the lowest free id, else the least recently used snapshot of a
  // node without users is dropped and its entry reused; nullopt when every entry is in use.
  std::optional<int32_t> AllocateSnapshot();
  // The save into `id` completed at node->end(): the node keeps it, unless it already has one
  // (then `id` goes back to the pool).
  void AttachSnapshot(Node* node, int32_t id);
  // An allocated entry that was never attached goes back to the pool.
  void FreeSnapshot(int32_t id);

  // Drops up to `count` blocks (LRU leaves without users, repeatedly) and returns their ids for
  // the caller to free.
  std::vector<int32_t> EvictBlocks(int64_t count);
  int64_t evictable_blocks() const { return unused_nodes_; }

  // Forgets everything (the workers lost their state); returns every block the tree held.
  std::vector<int32_t> Clear();

  PrefixCacheStats Stats() const;

 private:
  using LruSet = std::set<std::pair<uint64_t, Node*>>;
  void Unlist(Node* node);  // out of both LRU sets
  void List(Node* node);    // into the sets it belongs to (no users)
  void Drop(Node* node, std::vector<int32_t>* blocks);

  int32_t block_size_;
  int32_t num_snapshots_;
  Node root_;
  uint64_t clock_ = 0;
  int64_t num_nodes_ = 0;
  int64_t unused_nodes_ = 0;
  LruSet evictable_leaves_;  // leaves without users, by last use
  LruSet idle_snapshots_;    // nodes without users that hold a snapshot, by last use
  std::set<int32_t> free_snapshots_;
  PrefixCacheStats counters_;
};

}  // namespace tandem::coordinator
