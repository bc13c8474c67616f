#include "coordinator/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace tandem::coordinator {
namespace {

// Schedule order: priority descending, then arrival ascending.
template <typename A, typename B>
bool Before(const A* a, const B* b) {
  if (a->spec.priority != b->spec.priority) return a->spec.priority > b->spec.priority;
  return a->arrival < b->arrival;
}

}  // namespace

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config), slots_(config.num_slots), blocks_(config.num_blocks, config.block_size) {
  if (config.prefix_cache && config.num_snapshots > 0) {
    cache_ = std::make_unique<PrefixCache>(blocks_.block_size(), config.num_snapshots);
  }
}

absl::Status Scheduler::Add(SequenceSpec spec) {
  if (sequences_.count(spec.id) > 0) {
    return absl::InvalidArgumentError(absl::StrCat("sequence id ", spec.id, " is already in use"));
  }
  if (spec.prompt.empty()) return absl::InvalidArgumentError("prompt: empty");
  if (spec.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens: ", spec.max_new_tokens, " must be >= 1"));
  }
  // The last sampled token is never fed back, so the state covers prompt + max_new - 1 positions.
  const int64_t positions = static_cast<int64_t>(spec.prompt.size()) + spec.max_new_tokens - 1;
  if (blocks_.BlocksFor(positions) > blocks_.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stopping.max_new_tokens: prompt (", spec.prompt.size(), ") + max_new_tokens (",
        spec.max_new_tokens, ") needs ", blocks_.BlocksFor(positions), " KV blocks, more than the ",
        blocks_.num_blocks(), " the workers hold"));
  }
  const SchedulerStats stats = Stats();
  if (stats.waiting >= config_.max_queued_requests) {
    return absl::ResourceExhaustedError(absl::StrCat("the queue is full: ", stats.waiting,
                                                     " requests waiting (limit ",
                                                     config_.max_queued_requests, ")"));
  }
  if (stats.queued_prompt_tokens + static_cast<int64_t>(spec.prompt.size()) >
      config_.max_queued_prompt_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the queue is full: ", stats.queued_prompt_tokens, " prompt tokens waiting + ",
        spec.prompt.size(), " exceed the limit of ", config_.max_queued_prompt_tokens));
  }
  auto seq = std::make_unique<Sequence>();
  seq->arrival = next_arrival_++;
  seq->tokens = spec.prompt;
  seq->spec = std::move(spec);
  const uint64_t id = seq->spec.id;
  sequences_.emplace(id, std::move(seq));
  return absl::OkStatus();
}

int64_t Scheduler::AvailableBlocks() const {
  return blocks_.num_free() + (cache_ ? cache_->evictable_blocks() : 0);
}

bool Scheduler::EnsureBlocks(Sequence& seq, int64_t positions) {
  const int64_t need = blocks_.BlocksFor(positions) - static_cast<int64_t>(seq.blocks.size());
  if (need <= 0) return true;
  if (need > AvailableBlocks()) return false;
  if (need > blocks_.num_free()) {
    // Under memory pressure only: blocks that only the prefix cache holds, least recent first.
    TANDEM_CHECK(blocks_.Free(cache_->EvictBlocks(need - blocks_.num_free())).ok());
  }
  auto got = blocks_.Allocate(need);
  TANDEM_CHECK(got.has_value());
  seq.blocks.insert(seq.blocks.end(), got->begin(), got->end());
  seq.nodes.resize(seq.blocks.size(), nullptr);
  return true;
}

void Scheduler::Release(Sequence& seq) {
  if (seq.slot) {
    TANDEM_CHECK(slots_.Free(*seq.slot).ok());
    seq.slot.reset();
  }
  std::vector<int32_t> own;
  for (size_t i = 0; i < seq.blocks.size(); ++i) {
    PrefixCache::Node* node = i < seq.nodes.size() ? seq.nodes[i] : nullptr;
    if (node == nullptr || node->block() != seq.blocks[i]) own.push_back(seq.blocks[i]);
    if (node != nullptr) cache_->Release(node);
  }
  if (!own.empty()) TANDEM_CHECK(blocks_.Free(own).ok());
  seq.blocks.clear();
  seq.nodes.clear();
  seq.tree_blocks = 0;
  if (seq.pending_save >= 0) cache_->FreeSnapshot(seq.pending_save);
  seq.pending_save = -1;
  seq.restore = -1;
  seq.save_at.clear();
  seq.num_computed = 0;
}

void Scheduler::StartFromCache(Sequence& seq) {
  seq.num_computed = 0;
  if (!cache_) return;
  const int64_t bs = blocks_.block_size();
  // At least the last token is computed: its logits give the next one.
  const int64_t limit = static_cast<int64_t>(seq.tokens.size()) - 1;
  PrefixCache::Match m = cache_->Lookup(seq.tokens, limit);
  for (PrefixCache::Node* node : m.path) {
    cache_->Acquire(node);
    seq.blocks.push_back(node->block());
    seq.nodes.push_back(node);
  }
  seq.tree_blocks = static_cast<int64_t>(m.path.size());
  seq.num_computed = m.tokens;
  seq.restore = m.snapshot;
  // Snapshots: where the prompt leaves the cached tree (another prompt shares it up to there),
  // and at the prompt's last block boundary (a later request with the same prompt, or this one
  // after a preemption, resumes there).
  const int64_t prompt_len = static_cast<int64_t>(seq.spec.prompt.size());
  const int64_t prompt_end = (prompt_len - 1) / bs * bs;
  if (m.shared_tokens > m.tokens && m.shared_tokens != prompt_end) {
    seq.save_at.push_back(m.shared_tokens);
  }
  if (prompt_end > m.tokens) seq.save_at.push_back(prompt_end);
  std::sort(seq.save_at.begin(), seq.save_at.end());
}

int64_t Scheduler::ClipToSnapshot(Sequence& seq, int64_t chunk) const {
  while (!seq.save_at.empty() && seq.save_at.front() <= seq.num_computed) {
    seq.save_at.erase(seq.save_at.begin());
  }
  if (!seq.save_at.empty()) chunk = std::min(chunk, seq.save_at.front() - seq.num_computed);
  return chunk;
}

void Scheduler::CacheCompleted(Sequence& seq) {
  if (!cache_) return;
  const int64_t bs = blocks_.block_size();
  const int64_t prompt_len = static_cast<int64_t>(seq.spec.prompt.size());
  const int64_t full = std::min(seq.num_computed, prompt_len) / bs;
  for (int64_t& k = seq.tree_blocks; k < full && k < static_cast<int64_t>(seq.blocks.size()); ++k) {
    seq.nodes[k] =
        cache_->Insert(k > 0 ? seq.nodes[k - 1] : nullptr, seq.tokens, k * bs, seq.blocks[k]);
  }
  if (seq.pending_save >= 0) {
    const int64_t k = seq.num_computed / bs - 1;
    PrefixCache::Node* node =
        seq.num_computed % bs == 0 && k >= 0 && k < static_cast<int64_t>(seq.nodes.size())
            ? seq.nodes[k]
            : nullptr;
    if (node != nullptr && node->end() == seq.num_computed) {
      cache_->AttachSnapshot(node, seq.pending_save);
    } else {
      cache_->FreeSnapshot(seq.pending_save);
    }
    seq.pending_save = -1;
  }
}

void Scheduler::Preempt(Sequence& seq, StepPlan& plan) {
  Release(seq);
  ++seq.preemptions;
  ++preemptions_;
  plan.preempted.push_back(seq.spec.id);
}

std::vector<Scheduler::Sequence*> Scheduler::RunningOrdered() {
  std::vector<Sequence*> out;
  for (auto& [id, seq] : sequences_) {
    if (seq->slot) out.push_back(seq.get());
  }
  std::sort(out.begin(), out.end(),
            [](const Sequence* a, const Sequence* b) { return Before(a, b); });
  return out;
}

Scheduler::Sequence* Scheduler::PreemptionVictim(const Sequence& for_seq) {
  Sequence* victim = nullptr;
  for (auto& [id, seq] : sequences_) {
    Sequence* s = seq.get();
    if (!s->slot || s->in_flight || s->planned || s == &for_seq) continue;
    if (!Before(&for_seq, s)) continue;  // only sequences after it in schedule order
    if (victim == nullptr || Before(victim, s)) victim = s;
  }
  return victim;
}

bool Scheduler::LaterInFlight(const Sequence& for_seq) const {
  for (const auto& [id, seq] : sequences_) {
    if (seq->slot && seq->in_flight && Before(&for_seq, seq.get())) return true;
  }
  return false;
}

PlannedSequence Scheduler::Plan(Sequence& seq, int64_t chunk) {
  PlannedSequence p;
  p.id = seq.spec.id;
  p.slot = *seq.slot;
  p.start_pos = seq.num_computed;
  p.tokens.assign(seq.tokens.begin() + seq.num_computed,
                  seq.tokens.begin() + seq.num_computed + chunk);
  p.block_table.assign(seq.blocks.begin(),
                       seq.blocks.begin() + blocks_.BlocksFor(seq.num_computed + chunk));
  p.sample = seq.num_computed + chunk == static_cast<int64_t>(seq.tokens.size());
  p.prompt_len = static_cast<int64_t>(seq.spec.prompt.size());
  if (seq.restore >= 0 && seq.num_computed > 0) p.restore_snapshot = seq.restore;
  seq.restore = -1;
  if (cache_ && !seq.save_at.empty() && seq.save_at.front() == seq.num_computed + chunk) {
    seq.save_at.erase(seq.save_at.begin());
    if (std::optional<int32_t> id = cache_->AllocateSnapshot()) {
      p.save_snapshot = *id;
      seq.pending_save = *id;
    }
  }
  seq.planned = true;
  seq.pending_end = seq.num_computed + chunk;
  return p;
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  int64_t budget = config_.max_tokens_per_step;
  bool starved = false;  // a running sequence lacked blocks: admit nothing new this step

  // 1. Decodes of running sequences (at most a micro-batch's share of them).
  const std::vector<Sequence*> running = RunningOrdered();
  const int64_t micro = std::max<int32_t>(1, config_.micro_batches);
  const int64_t max_decodes =
      std::max<int64_t>(1, (static_cast<int64_t>(running.size()) + micro - 1) / micro);
  int64_t decodes = 0;
  for (Sequence* seq : running) {
    if (budget <= 0 || decodes >= max_decodes) break;
    if (seq->in_flight || !seq->slot) continue;
    const int64_t remaining = static_cast<int64_t>(seq->tokens.size()) - seq->num_computed;
    if (remaining != 1 || seq->num_computed == 0) continue;
    bool fits = true;
    while (!EnsureBlocks(*seq, seq->num_computed + 1)) {
      Sequence* victim = PreemptionVictim(*seq);
      if (victim == nullptr) {
        fits = false;
        break;
      }
      Preempt(*victim, plan);
    }
    if (!fits) {
      starved = true;
      // Wait for a later sequence in flight to become preemptable; with none, nothing after it
      // can give blocks back: preempt itself so the earlier ones progress.
      if (!LaterInFlight(*seq)) Preempt(*seq, plan);
      continue;
    }
    plan.sequences.push_back(Plan(*seq, 1));
    budget -= 1;
    ++decodes;
  }

  // 2. Prefill chunks of admitted sequences (includes recomputation after preemption).
  for (Sequence* seq : RunningOrdered()) {
    if (budget <= 0) break;
    if (seq->in_flight || seq->planned || !seq->slot) continue;
    const int64_t remaining = static_cast<int64_t>(seq->tokens.size()) - seq->num_computed;
    if (remaining <= 0) continue;
    int64_t chunk = std::min(remaining, budget);
    // Shrink the chunk to what the free blocks can hold; with none, take blocks from sequences
    // after it in schedule order (never from earlier ones, so the first always progresses).
    auto capacity = [&] {
      return (static_cast<int64_t>(seq->blocks.size()) + AvailableBlocks()) * blocks_.block_size() -
             seq->num_computed;
    };
    while (capacity() <= 0) {
      Sequence* victim = PreemptionVictim(*seq);
      if (victim == nullptr) break;
      Preempt(*victim, plan);
    }
    chunk = ClipToSnapshot(*seq, std::min(chunk, capacity()));
    if (chunk <= 0) {
      starved = true;
      continue;
    }
    TANDEM_CHECK(EnsureBlocks(*seq, seq->num_computed + chunk));
    plan.sequences.push_back(Plan(*seq, chunk));
    budget -= chunk;
  }

  // 3. Admissions, head-of-line in priority / FCFS order.
  std::vector<Sequence*> waiting;
  for (auto& [id, seq] : sequences_) {
    if (!seq->slot && !seq->in_flight) waiting.push_back(seq.get());
  }
  std::sort(waiting.begin(), waiting.end(),
            [](const Sequence* a, const Sequence* b) { return Before(a, b); });
  for (Sequence* seq : waiting) {
    if (starved || !plan.preempted.empty() || budget <= 0 || slots_.num_free() == 0) break;
    std::optional<int32_t> slot = slots_.Allocate();
    TANDEM_CHECK(slot.has_value());
    seq->slot = slot;
    StartFromCache(*seq);  // num_computed: the reused prefix (block aligned), 0 without one
    const int64_t remaining = static_cast<int64_t>(seq->tokens.size()) - seq->num_computed;
    int64_t chunk = std::min(remaining, budget);
    chunk = std::min(chunk, AvailableBlocks() * blocks_.block_size());
    chunk = ClipToSnapshot(*seq, chunk);
    if (chunk <= 0) {
      Release(*seq);
      break;
    }
    if (cache_) {
      cache_->RecordAdmission(static_cast<int64_t>(seq->tokens.size()), seq->num_computed);
    }
    if (seq->cached_tokens < 0) seq->cached_tokens = seq->num_computed;
    TANDEM_CHECK(EnsureBlocks(*seq, seq->num_computed + chunk));
    plan.sequences.push_back(Plan(*seq, chunk));
    budget -= chunk;
  }

  for (PlannedSequence& p : plan.sequences) {
    Sequence& seq = *sequences_.at(p.id);
    seq.planned = false;
    seq.in_flight = true;
    plan.num_tokens += static_cast<int64_t>(p.tokens.size());
  }
  return plan;
}

void Scheduler::Complete(uint64_t id, std::optional<int32_t> token) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  Sequence& seq = *it->second;
  if (!seq.in_flight) return;
  seq.in_flight = false;
  if (!seq.slot) return;  // preempted while in flight cannot happen; defensive
  seq.num_computed = seq.pending_end;
  CacheCompleted(seq);
  if (token.has_value() && seq.pending_end == static_cast<int64_t>(seq.tokens.size())) {
    seq.tokens.push_back(*token);
  }
}

bool Scheduler::Finish(uint64_t id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return false;
  Release(*it->second);
  sequences_.erase(it);
  return true;
}

std::vector<uint64_t> Scheduler::RequeueAll() {
  std::vector<uint64_t> started;
  for (auto& [id, seq] : sequences_) {
    if (seq->slot) {
      started.push_back(id);
      seq->requeued = true;
    }
    Release(*seq);
    seq->in_flight = false;
    seq->planned = false;
    seq->pending_end = 0;
  }
  // The workers lost every snapshot and KV block: the tree goes too.
  if (cache_) TANDEM_CHECK(blocks_.Free(cache_->Clear()).ok());
  return started;
}

std::vector<int32_t> Scheduler::Generated(uint64_t id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return {};
  const Sequence& seq = *it->second;
  return std::vector<int32_t>(seq.tokens.begin() + seq.spec.prompt.size(), seq.tokens.end());
}

int32_t Scheduler::CachedTokens(uint64_t id) const {
  auto it = sequences_.find(id);
  return it == sequences_.end()
             ? 0
             : static_cast<int32_t>(std::max<int64_t>(0, it->second->cached_tokens));
}

int32_t Scheduler::Preemptions(uint64_t id) const {
  auto it = sequences_.find(id);
  return it == sequences_.end() ? 0 : it->second->preemptions;
}

SchedulerStats Scheduler::Stats() const {
  SchedulerStats s;
  for (const auto& [id, seq] : sequences_) {
    if (seq->slot) {
      ++s.running;
    } else {
      ++s.waiting;
      if (seq->preemptions == 0 && !seq->requeued)
        s.queued_prompt_tokens += static_cast<int64_t>(seq->tokens.size());
    }
    if (seq->in_flight) ++s.in_flight;
  }
  s.free_slots = slots_.num_free();
  s.free_blocks = static_cast<int32_t>(AvailableBlocks());
  if (cache_) s.prefix_cache = cache_->Stats();
  s.preemptions = preemptions_;
  return s;
}

}  // namespace tandem::coordinator
