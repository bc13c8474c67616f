// Scheduler: continuous batching with chunked prefill and coupled slot + KV block admission.
//
// The scheduler owns the SSM slot pool and the KV block allocator (capacities: the smallest over
// the workers of a replica) and turns its sequences into step plans. One Schedule() builds one
// step under a token budget:
//   1. running decodes first (one token each), in priority order, FCFS within a priority; a decode
//      that needs a new block when none is free preempts the lowest-priority, latest-arrived
//      running sequence after it that is not in flight (or, without one, itself): its slot and
//      blocks are freed and it goes back to the queue to be recomputed (prompt + the tokens
//      generated so far);
//   2. then prefill chunks of admitted sequences (shrunk to the free blocks; a chunk that gets
//      no block preempts sequences after it, never before it, so the first always progresses);
//   3. then, unless a running sequence lacked blocks in this step, admissions from the queue, in
//      priority order: a sequence starts only when a slot AND
//      the blocks for its first chunk are free (head-of-line: a waiting sequence that does not fit
//      stops admission, so priority and FCFS hold).
// Prefix caching (config.prefix_cache, DESIGN.md §3, coordinator/prefix_cache.h): at admission a
// sequence looks its tokens up and starts at the longest prefix that has both KV blocks and a
// state snapshot (its first chunk restores the snapshot; it shares the blocks); it prefills only
// the rest. It saves snapshots at the last block boundary of its prompt and where its prompt
// leaves the tree of cached blocks (a branch point, shared by another prompt): a prefill chunk
// ends at each of those positions. Its full prompt blocks join the tree as their chunks complete.
// Blocks held only by the tree count as free: they are evicted (LRU) when an allocation needs
// them, before any preemption.
// A sequence is in flight from Schedule() until Complete(); sequences in flight are not planned
// again, so calling Schedule() several times before completing gives disjoint micro-batches (one
// per pipeline stage). Finish() (finished, cancelled, expired, aborted) releases the slot and
// blocks at once; a later Complete() for it is ignored. Not thread-safe: one scheduler thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/block_allocator.h"
#include "coordinator/prefix_cache.h"
#include "coordinator/slot_pool.h"

namespace tandem::coordinator {

struct SchedulerConfig {
  int32_t num_slots = 8;
  int32_t num_blocks = 256;
  int32_t block_size = 16;
  int64_t max_tokens_per_step = 512;  // token budget of one step
  int64_t max_queued_requests = 1024;
  int64_t max_queued_prompt_tokens = 1 << 20;
  // Plans kept in flight at once (pipeline stages). With more than one, a plan takes at most
  // ceil(running / micro_batches) decodes, so the running sequences spread over the micro-batches.
  int32_t micro_batches = 1;
  bool prefix_cache = false;
  int32_t num_snapshots = 0;  // snapshot-pool entries (the smallest over the workers)
};

struct SequenceSpec {
  uint64_t id = 0;       // unique among live sequences
  int32_t priority = 0;  // higher first
  std::vector<int32_t> prompt;
  int32_t max_new_tokens = 1;
};

struct PlannedSequence {
  uint64_t id = 0;
  int32_t slot = -1;
  std::vector<int32_t> block_table;  // covers [0, start_pos + tokens.size())
  int64_t start_pos = 0;             // 0 = fresh state
  std::vector<int32_t> tokens;
  bool sample = false;            // the chunk ends at the last known token: sample the next
  int64_t prompt_len = 0;         // the original prompt length (penalties)
  int32_t restore_snapshot = -1;  // >= 0: restore this snapshot into the slot first
  int32_t save_snapshot = -1;     // >= 0: save the state after this chunk into this snapshot
};

struct StepPlan {
  std::vector<PlannedSequence> sequences;
  std::vector<uint64_t> preempted;  // sequences sent back to the queue by this plan
  int64_t num_tokens = 0;
  bool empty() const { return sequences.empty(); }
};

struct SchedulerStats {
  int64_t waiting = 0;
  int64_t running = 0;  // admitted (holding a slot)
  int64_t in_flight = 0;
  int64_t queued_prompt_tokens = 0;
  int32_t free_slots = 0;
  int32_t free_blocks = 0;  // free, or held only by the prefix cache (reclaimable)
  int64_t preemptions = 0;
  PrefixCacheStats prefix_cache;
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  // Queues a sequence. RESOURCE_EXHAUSTED when the queue is full (requests or prompt tokens);
  // INVALID_ARGUMENT when it could never fit the block pool or the id is in use.
  [[nodiscard]] absl::Status Add(SequenceSpec spec);

  StepPlan Schedule();

  // The step that carried `id` finished; `token` is the sampled token when the chunk sampled.
  // Ignored for unknown (finished) ids.
  void Complete(uint64_t id, std::optional<int32_t> token);

  // Ends the sequence wherever it is; frees its slot and blocks. Returns false if unknown.
  bool Finish(uint64_t id);

  // The workers lost every sequence's state (the group failed and is being rebuilt): every
  // sequence goes back to the queue, in its original arrival order, to be recomputed from its
  // prompt plus the tokens generated so far; steps in flight are forgotten (a later Complete for
  // them is ignored). Returns the ids of the sequences that had started (held a slot).
  std::vector<uint64_t> RequeueAll();

  bool Contains(uint64_t id) const { return sequences_.count(id) > 0; }
  // Generated tokens of a live sequence (empty if unknown).
  std::vector<int32_t> Generated(uint64_t id) const;
  int32_t Preemptions(uint64_t id) const;
  // Prompt tokens the sequence reused from the prefix cache at its first admission (0 before).
  int32_t CachedTokens(uint64_t id) const;
  SchedulerStats Stats() const;
  const SchedulerConfig& config() const { return config_; }

 private:
  struct Sequence {
    SequenceSpec spec;
    uint64_t arrival = 0;
    std::vector<int32_t> tokens;  // prompt + generated
    int64_t num_computed = 0;     // positions whose state the workers hold
    std::optional<int32_t> slot;
    std::vector<int32_t> blocks;
    bool in_flight = false;
    bool planned = false;     // in the plan being built
    int64_t pending_end = 0;  // num_computed once the in-flight chunk completes
    int32_t preemptions = 0;
    bool requeued = false;  // started, then sent back by RequeueAll
    // Prefix caching. nodes[i]: the tree node of blocks[i] the sequence is a user of (nullptr
    // when blocks[i] is not in the tree); blocks[i] is the sequence's own unless it is that
    // node's block.
    std::vector<PrefixCache::Node*> nodes;
    int64_t tree_blocks = 0;       // nodes[0, tree_blocks) are set
    int64_t cached_tokens = -1;    // reused at the first admission (-1: not admitted yet)
    int32_t restore = -1;          // snapshot the next chunk restores
    std::vector<int64_t> save_at;  // positions to snapshot, ascending
    int32_t pending_save = -1;     // the entry the chunk in flight saves into
  };

  // Grows `seq`'s block table to cover `positions` (evicting cached blocks nobody uses when the
  // free ones do not suffice); false (nothing changed) if not enough.
  bool EnsureBlocks(Sequence& seq, int64_t positions);
  // Free blocks plus the prefix cache's reclaimable ones.
  int64_t AvailableBlocks() const;
  // Admission: reuse the longest cached prefix and choose where to save snapshots.
  void StartFromCache(Sequence& seq);
  // Shortens a prefill chunk so that it ends at the sequence's next snapshot position.
  int64_t ClipToSnapshot(Sequence& seq, int64_t chunk) const;
  // A chunk completed: its full prompt blocks join the tree, its snapshot is attached.
  void CacheCompleted(Sequence& seq);
  void Release(Sequence& seq);
  void Preempt(Sequence& seq, StepPlan& plan);
  // Running sequences (holding a slot) in schedule order.
  std::vector<Sequence*> RunningOrdered();
  // The last sequence in schedule order after `for_seq` that holds a slot and is not in flight.
  Sequence* PreemptionVictim(const Sequence& for_seq);
  bool LaterInFlight(const Sequence& for_seq) const;
  PlannedSequence Plan(Sequence& seq, int64_t chunk);

  SchedulerConfig config_;
  SlotPool slots_;
  BlockAllocator blocks_;
  std::unique_ptr<PrefixCache> cache_;  // null with prefix caching off
  std::map<uint64_t, std::unique_ptr<Sequence>> sequences_;
  uint64_t next_arrival_ = 0;
  int64_t preemptions_ = 0;
};

}  // namespace tandem::coordinator
