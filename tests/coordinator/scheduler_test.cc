// Scheduler tests against a fake executor (test-only): a deterministic "model" whose next token
// is a hash of every token the slot has been fed. The fake checks every plan the way a worker
// would (fresh state at start_pos 0, contiguous positions, block tables covering the positions,
// no block or slot shared by two live sequences), so tokens equal the run-alone reference only if
// the scheduler's state handling is right.
#include "coordinator/scheduler.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

constexpr int32_t kVocab = 1000;

int32_t NextToken(const std::vector<int32_t>& history) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : history) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
  return static_cast<int32_t>(h % kVocab);
}

std::vector<int32_t> Alone(const std::vector<int32_t>& prompt, int32_t n) {
  std::vector<int32_t> h = prompt, out;
  for (int32_t i = 0; i < n; ++i) {
    out.push_back(NextToken(h));
    h.push_back(out.back());
  }
  return out;
}

class FakeExecutor {
 public:
  explicit FakeExecutor(const SchedulerConfig& c) : config_(c) {}

  // Executes a plan; returns the sampled token per sequence (or -1). As a worker does: every
  // restore first, then each sequence's chunk, then every save.
  std::vector<int32_t> Run(const StepPlan& plan) {
    std::vector<int32_t> out;
    std::set<int32_t> slots_in_plan, saves;
    int64_t tokens = 0;
    for (const PlannedSequence& p : plan.sequences) {
      if (p.restore_snapshot < 0) continue;
      auto it = snapshots_.find(p.restore_snapshot);
      if (it == snapshots_.end()) {
        ADD_FAILURE() << "seq " << p.id << " restores snapshot " << p.restore_snapshot
                      << ", never saved";
        continue;
      }
      EXPECT_GT(p.start_pos, 0);
      EXPECT_EQ(p.start_pos, static_cast<int64_t>(it->second.size())) << "seq " << p.id;
      history_[p.slot] = it->second;
      ++restores_;
    }
    for (const PlannedSequence& p : plan.sequences) {
      EXPECT_TRUE(slots_in_plan.insert(p.slot).second) << "slot " << p.slot << " twice in a plan";
      EXPECT_GE(p.slot, 0);
      EXPECT_LT(p.slot, config_.num_slots);
      auto& h = history_[p.slot];
      if (p.start_pos == 0) h.clear();
      EXPECT_EQ(p.start_pos, static_cast<int64_t>(h.size())) << "seq " << p.id;
      const int64_t end = p.start_pos + static_cast<int64_t>(p.tokens.size());
      EXPECT_EQ(static_cast<int64_t>(p.block_table.size()),
                (end + config_.block_size - 1) / config_.block_size);
      for (int32_t b : p.block_table) {
        EXPECT_GE(b, 0);
        EXPECT_LT(b, config_.num_blocks);
      }
      // The KV the chunk reads (every earlier position, through the block table) must be what
      // this sequence's own tokens put there: a block shared with, or taken by, another sequence
      // shows up here as a different token.
      for (int64_t pos = 0; pos < p.start_pos; ++pos) {
        const int32_t b = p.block_table[pos / config_.block_size];
        const auto kv = kv_.find({b, pos % config_.block_size});
        if (kv == kv_.end() || kv->second != h[pos]) {
          ADD_FAILURE() << "seq " << p.id << " reads position " << pos << " from block " << b
                        << ", which holds another token";
          break;
        }
      }
      h.insert(h.end(), p.tokens.begin(), p.tokens.end());
      for (int64_t pos = p.start_pos; pos < end; ++pos) {
        kv_[{p.block_table[pos / config_.block_size], pos % config_.block_size}] = h[pos];
      }
      tokens += static_cast<int64_t>(p.tokens.size());
      out.push_back(p.sample ? NextToken(h) : -1);
      ++sequences_seen_;
    }
    for (const PlannedSequence& p : plan.sequences) {
      if (p.save_snapshot < 0) continue;
      EXPECT_TRUE(saves.insert(p.save_snapshot).second)
          << "snapshot " << p.save_snapshot << " saved twice in a plan";
      EXPECT_LT(p.save_snapshot, std::max(1, config_.num_snapshots));
      EXPECT_EQ((p.start_pos + static_cast<int64_t>(p.tokens.size())) % config_.block_size, 0)
          << "snapshots are block aligned";
      snapshots_[p.save_snapshot] = history_[p.slot];
    }
    EXPECT_LE(tokens, config_.max_tokens_per_step);
    return out;
  }
  void Gone(uint64_t /*id*/) {}
  int64_t sequences_seen() const { return sequences_seen_; }
  int64_t restores() const { return restores_; }

 private:
  SchedulerConfig config_;
  std::map<int32_t, std::vector<int32_t>> history_;
  std::map<std::pair<int32_t, int64_t>, int32_t> kv_;  // (block, offset) -> token written there
  std::map<int32_t, std::vector<int32_t>> snapshots_;
  int64_t sequences_seen_ = 0;
  int64_t restores_ = 0;
};

struct Job {
  std::vector<int32_t> prompt;
  int32_t max_new;
};

std::vector<Job> RandomJobs(std::mt19937& rng, int n, int max_prompt, int max_new) {
  std::vector<Job> jobs;
  for (int i = 0; i < n; ++i) {
    Job j;
    const int len = 1 + static_cast<int>(rng() % max_prompt);
    for (int k = 0; k < len; ++k) j.prompt.push_back(static_cast<int32_t>(rng() % kVocab));
    j.max_new = 1 + static_cast<int32_t>(rng() % max_new);
    jobs.push_back(j);
  }
  return jobs;
}

// Runs every job to max_new tokens through `pp` micro-batches in flight; returns the outputs.
// With fail_every > 0 the worker group fails before every fail_every-th step: RequeueAll, the
// plans in flight are lost and a fresh executor (a rebuilt group holds no state) takes over.
// What a run saw of the prefix cache.
struct RunInfo {
  std::map<uint64_t, int32_t> cached;  // per job: Scheduler::CachedTokens when it finished
  PrefixCacheStats cache;
  int64_t restores = 0;
};

std::map<uint64_t, std::vector<int32_t>> RunAll(const SchedulerConfig& config,
                                                const std::vector<Job>& jobs, int pp,
                                                int64_t* preemptions, int fail_every = 0,
                                                int* failures = nullptr, RunInfo* info = nullptr) {
  Scheduler s(config);
  auto exec_holder = std::make_unique<FakeExecutor>(config);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SequenceSpec spec;
    spec.id = i;
    spec.prompt = jobs[i].prompt;
    spec.max_new_tokens = jobs[i].max_new;
    EXPECT_TRUE(s.Add(spec).ok());
  }
  std::map<uint64_t, std::vector<int32_t>> done;
  std::vector<StepPlan> in_flight;
  for (int steps = 0; done.size() < jobs.size(); ++steps) {
    if (steps > 100000) {
      ADD_FAILURE() << "no progress";
      break;
    }
    if (fail_every > 0 && steps % fail_every == fail_every - 1) {
      s.RequeueAll();
      EXPECT_EQ(s.Stats().prefix_cache.cached_blocks, 0);
      if (info) info->restores += exec_holder->restores();
      in_flight.clear();
      exec_holder = std::make_unique<FakeExecutor>(config);
      if (failures) ++*failures;
      const SchedulerStats st = s.Stats();
      EXPECT_EQ(st.running, 0);
      EXPECT_EQ(st.in_flight, 0);
      EXPECT_EQ(st.free_slots, config.num_slots);
      EXPECT_EQ(st.free_blocks, config.num_blocks);
    }
    while (static_cast<int>(in_flight.size()) < pp) {
      StepPlan plan = s.Schedule();
      if (plan.empty()) break;
      // Micro-batches in flight are disjoint.
      for (const StepPlan& other : in_flight) {
        for (const auto& a : plan.sequences) {
          for (const auto& b : other.sequences) EXPECT_NE(a.id, b.id);
        }
      }
      in_flight.push_back(std::move(plan));
    }
    if (in_flight.empty()) {
      ADD_FAILURE() << "nothing scheduled with " << jobs.size() - done.size() << " jobs left";
      break;
    }
    StepPlan plan = std::move(in_flight.front());
    in_flight.erase(in_flight.begin());
    const std::vector<int32_t> tokens = exec_holder->Run(plan);
    for (size_t k = 0; k < plan.sequences.size(); ++k) {
      const uint64_t id = plan.sequences[k].id;
      s.Complete(id, tokens[k] >= 0 ? std::optional<int32_t>(tokens[k]) : std::nullopt);
      std::vector<int32_t> gen = s.Generated(id);
      if (static_cast<int32_t>(gen.size()) == jobs[id].max_new) {
        done[id] = gen;
        if (info) info->cached[id] = s.CachedTokens(id);
        EXPECT_TRUE(s.Finish(id));
        exec_holder->Gone(id);
      }
    }
  }
  const SchedulerStats st = s.Stats();
  EXPECT_EQ(st.free_slots, config.num_slots);
  EXPECT_EQ(st.free_blocks, config.num_blocks);
  EXPECT_EQ(st.running + st.waiting, 0);
  if (preemptions) *preemptions = st.preemptions;
  if (info) {
    info->cache = st.prefix_cache;
    info->restores += exec_holder->restores();
  }
  return done;
}

TEST(SchedulerTest, MixedBatchesEqualEachSequenceAlone) {
  std::mt19937 rng(std::random_device{}());
  const std::vector<Job> jobs = RandomJobs(rng, 64, 80, 40);
  SchedulerConfig c;
  c.num_slots = 16;
  c.num_blocks = 512;
  c.block_size = 8;
  c.max_tokens_per_step = 64;
  for (int pp : {1, 2, 4}) {
    const auto done = RunAll(c, jobs, pp, nullptr);
    ASSERT_EQ(done.size(), jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      EXPECT_EQ(done.at(i), Alone(jobs[i].prompt, jobs[i].max_new)) << "job " << i << " pp " << pp;
    }
  }
}

TEST(SchedulerTest, PreemptionWithASmallBlockPoolGivesTheUnpreemptedTokens) {
  std::mt19937 rng(std::random_device{}());
  const std::vector<Job> jobs = RandomJobs(rng, 24, 20, 60);
  SchedulerConfig c;
  c.num_slots = 8;
  c.num_blocks = 12;  // 48 positions for 8 sequences of up to ~80
  c.block_size = 4;
  c.max_tokens_per_step = 32;
  std::vector<Job> fitting;
  for (const Job& j : jobs) {
    if (static_cast<int>(j.prompt.size()) + j.max_new - 1 <= 48) fitting.push_back(j);
  }
  int64_t preemptions = 0;
  const auto done = RunAll(c, fitting, 2, &preemptions);
  ASSERT_EQ(done.size(), fitting.size());
  for (size_t i = 0; i < fitting.size(); ++i) {
    EXPECT_EQ(done.at(i), Alone(fitting[i].prompt, fitting[i].max_new)) << "job " << i;
  }
  EXPECT_GT(preemptions, 0) << "the pool was not small enough to preempt";
}

TEST(SchedulerTest, DecodesFirstThenPrefillChunksUnderTheBudget) {
  SchedulerConfig c;
  c.num_slots = 4;
  c.num_blocks = 64;
  c.block_size = 4;
  c.max_tokens_per_step = 10;
  Scheduler s(c);
  ASSERT_TRUE(s.Add({1, 0, std::vector<int32_t>(3, 7), 5}).ok());
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.sequences.size(), 1u);
  EXPECT_TRUE(p.sequences[0].sample);
  s.Complete(1, 42);
  ASSERT_TRUE(s.Add({2, 0, std::vector<int32_t>(25, 7), 5}).ok());
  p = s.Schedule();
  ASSERT_EQ(p.sequences.size(), 2u);
  EXPECT_EQ(p.sequences[0].id, 1u);  // the decode first
  EXPECT_EQ(p.sequences[0].tokens, std::vector<int32_t>{42});
  EXPECT_EQ(p.sequences[0].start_pos, 3);
  EXPECT_EQ(p.sequences[1].id, 2u);
  EXPECT_EQ(p.sequences[1].tokens.size(), 9u);  // the rest of the budget
  EXPECT_FALSE(p.sequences[1].sample);
  EXPECT_EQ(p.num_tokens, 10);
  // In flight: nothing more to plan.
  EXPECT_TRUE(s.Schedule().empty());
  s.Complete(1, 43);
  s.Complete(2, std::nullopt);
  p = s.Schedule();
  ASSERT_EQ(p.sequences.size(), 2u);
  EXPECT_EQ(p.sequences[1].start_pos, 9);
  EXPECT_EQ(p.sequences[1].tokens.size(), 9u);
}

TEST(SchedulerTest, PriorityThenFcfsAndCoupledAdmission) {
  SchedulerConfig c;
  c.num_slots = 2;
  c.num_blocks = 8;
  c.block_size = 4;
  c.max_tokens_per_step = 100;
  Scheduler s(c);
  ASSERT_TRUE(s.Add({10, 0, std::vector<int32_t>(4, 1), 2}).ok());
  ASSERT_TRUE(s.Add({11, 5, std::vector<int32_t>(4, 1), 2}).ok());
  ASSERT_TRUE(s.Add({12, 5, std::vector<int32_t>(4, 1), 2}).ok());
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.sequences.size(), 2u);  // two slots
  EXPECT_EQ(p.sequences[0].id, 11u);
  EXPECT_EQ(p.sequences[1].id, 12u);
  EXPECT_TRUE(s.Finish(11));
  p = s.Schedule();
  ASSERT_EQ(p.sequences.size(), 1u);
  EXPECT_EQ(p.sequences[0].id, 10u);
  // A sequence waits when a slot is free but its blocks are not.
  SchedulerConfig small = c;
  small.num_blocks = 3;
  Scheduler t(small);
  ASSERT_TRUE(t.Add({1, 0, std::vector<int32_t>(12, 1), 1}).ok());
  ASSERT_TRUE(t.Add({2, 0, std::vector<int32_t>(4, 1), 1}).ok());
  p = t.Schedule();
  ASSERT_EQ(p.sequences.size(), 1u);
  EXPECT_EQ(t.Stats().free_slots, 1);
  EXPECT_EQ(t.Stats().waiting, 1);
}

TEST(SchedulerTest, BoundedQueueAndImpossibleRequests) {
  SchedulerConfig c;
  c.num_slots = 1;
  c.num_blocks = 4;
  c.block_size = 4;
  c.max_queued_requests = 2;
  c.max_queued_prompt_tokens = 10;
  Scheduler s(c);
  EXPECT_TRUE(s.Add({1, 0, {1, 2, 3}, 2}).ok());
  EXPECT_EQ(s.Add({1, 0, {1}, 2}).code(), absl::StatusCode::kInvalidArgument);  // duplicate id
  EXPECT_EQ(s.Add({2, 0, std::vector<int32_t>(8, 1), 2}).code(),
            absl::StatusCode::kResourceExhausted);  // 3 + 8 prompt tokens > 10
  EXPECT_TRUE(s.Add({3, 0, {1}, 2}).ok());
  EXPECT_EQ(s.Add({4, 0, {1}, 2}).code(), absl::StatusCode::kResourceExhausted);  // 2 requests
  EXPECT_EQ(s.Add({5, 0, std::vector<int32_t>(10, 1), 8}).code(),
            absl::StatusCode::kInvalidArgument);  // 17 positions > 16
}

// With the prefix cache on, prompts share an 8-token prefix, and cancellations hit sequences
// with snapshots being saved and blocks shared.
class RandomCancelsTest : public ::testing::TestWithParam<bool> {};

TEST_P(RandomCancelsTest, LeaveThePoolsFull) {
  std::mt19937 rng(std::random_device{}());
  SchedulerConfig c;
  c.num_slots = 8;
  c.num_blocks = 40;
  c.block_size = 4;
  c.max_tokens_per_step = 48;
  c.prefix_cache = GetParam();
  c.num_snapshots = 4;
  const std::vector<int32_t> shared = {5, 6, 7, 8, 9, 10, 11, 12};
  Scheduler s(c);
  FakeExecutor exec(c);
  std::set<uint64_t> live;
  uint64_t next_id = 0;
  int cancels = 0;
  std::vector<StepPlan> in_flight;
  while (cancels < 1000) {
    while (live.size() < 24) {
      Job j = RandomJobs(rng, 1, 30, 40)[0];
      if (c.prefix_cache && rng() % 2 == 0)
        j.prompt.insert(j.prompt.begin(), shared.begin(), shared.end());
      ASSERT_TRUE(s.Add({next_id, static_cast<int32_t>(rng() % 3), j.prompt, j.max_new}).ok());
      live.insert(next_id++);
    }
    // Cancel a random live sequence (queued, running or in flight).
    auto it = live.begin();
    std::advance(it, static_cast<long>(rng() % live.size()));
    const int32_t before_slots = s.Stats().free_slots;
    const bool was_running = s.Stats().running > 0;
    (void)was_running;
    ASSERT_TRUE(s.Finish(*it));
    exec.Gone(*it);
    EXPECT_GE(s.Stats().free_slots, before_slots);
    live.erase(it);
    ++cancels;
    while (in_flight.size() < 2) {
      StepPlan p = s.Schedule();
      if (p.empty()) break;
      in_flight.push_back(std::move(p));
    }
    if (in_flight.empty()) continue;
    StepPlan p = std::move(in_flight.front());
    in_flight.erase(in_flight.begin());
    // Sequences cancelled while in flight are skipped by the executor's caller.
    StepPlan alive;
    for (auto& q : p.sequences) {
      if (live.count(q.id)) alive.sequences.push_back(q);
    }
    const auto tokens = exec.Run(alive);
    for (size_t k = 0; k < alive.sequences.size(); ++k) {
      const uint64_t id = alive.sequences[k].id;
      s.Complete(id, tokens[k] >= 0 ? std::optional<int32_t>(tokens[k]) : std::nullopt);
    }
  }
  for (uint64_t id : live) ASSERT_TRUE(s.Finish(id));
  const SchedulerStats st = s.Stats();
  EXPECT_EQ(st.free_slots, c.num_slots);
  EXPECT_EQ(st.free_blocks, c.num_blocks);
  EXPECT_EQ(st.running + st.waiting, 0);
  if (c.prefix_cache) {
    EXPECT_GT(st.prefix_cache.hits, 0);
    // Only snapshots attached to cached nodes remain (no entry leaked by a cancelled save).
    EXPECT_LE(st.prefix_cache.used_snapshots, st.prefix_cache.cached_blocks);
  }
}

INSTANTIATE_TEST_SUITE_P(PrefixCache, RandomCancelsTest, ::testing::Bool());

}  // namespace
}  // namespace tandem::coordinator

namespace tandem::coordinator {
namespace {

// The group fails every few steps (RequeueAll, plans in flight dropped, a fresh executor as the
// rebuilt group has no state): every sequence still ends with exactly the tokens it gets alone,
// and the pools are full at the end.
TEST(SchedulerTest, RequeueAllAfterAGroupFailureGivesTheUninterruptedTokens) {
  std::mt19937 rng(1234);
  SchedulerConfig config;
  config.num_slots = 4;
  config.num_blocks = 24;
  config.block_size = 4;
  config.max_tokens_per_step = 16;
  config.micro_batches = 2;
  const std::vector<Job> jobs = RandomJobs(rng, 12, 20, 24);
  int failures = 0;
  const auto done = RunAll(config, jobs, 2, nullptr, /*fail_every=*/7, &failures);
  EXPECT_GT(failures, 3);
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(done.at(i), Alone(jobs[i].prompt, jobs[i].max_new)) << "job " << i;
  }
}

}  // namespace
}  // namespace tandem::coordinator

namespace tandem::coordinator {
namespace {

// Jobs whose prompts start with one of `prefixes` (or nothing), then a random tail.
std::vector<Job> SharedPrefixJobs(std::mt19937& rng, int n, const std::vector<int>& prefix_lens,
                                  int max_tail, int max_new) {
  std::vector<std::vector<int32_t>> prefixes;
  for (int len : prefix_lens) {
    std::vector<int32_t> p;
    for (int k = 0; k < len; ++k) p.push_back(static_cast<int32_t>(rng() % kVocab));
    prefixes.push_back(p);
  }
  std::vector<Job> jobs;
  for (int i = 0; i < n; ++i) {
    Job j;
    const size_t which = rng() % (prefixes.size() + 1);
    if (which < prefixes.size()) j.prompt = prefixes[which];
    const int tail = (j.prompt.empty() ? 1 : 0) + static_cast<int>(rng() % (max_tail + 1));
    for (int k = 0; k < tail; ++k) j.prompt.push_back(static_cast<int32_t>(rng() % kVocab));
    j.max_new = 1 + static_cast<int32_t>(rng() % max_new);
    jobs.push_back(j);
  }
  return jobs;
}

SchedulerConfig CacheConfig() {
  SchedulerConfig c;
  c.num_slots = 6;
  c.num_blocks = 256;
  c.block_size = 4;
  c.max_tokens_per_step = 24;  // prompts are prefilled in several chunks
  c.prefix_cache = true;
  c.num_snapshots = 32;
  return c;
}

void ExpectAlone(const std::vector<Job>& jobs, const std::map<uint64_t, std::vector<int32_t>>& done,
                 const std::string& what) {
  ASSERT_EQ(done.size(), jobs.size()) << what;
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(done.at(i), Alone(jobs[i].prompt, jobs[i].max_new)) << "job " << i << " " << what;
  }
}

// Shared prefixes of 0, 1 and many blocks and whole repeated prompts: every sequence gets exactly
// the tokens it gets alone (the fake checks every KV position a chunk reads and every restored
// state), hits are reported, and cached tokens are block aligned and leave the last prompt token
// to compute.
TEST(SchedulerPrefixCacheTest, HitsAreExactOnEveryPipelineDepth) {
  const uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::vector<Job> jobs = SharedPrefixJobs(rng, 60, {4, 5, 37, 64}, 12, 12);
  for (int i = 0; i < 6; ++i) jobs.push_back(jobs[rng() % jobs.size()]);  // whole prompts again
  for (int pp : {1, 2, 4}) {
    SchedulerConfig c = CacheConfig();
    c.micro_batches = pp;
    RunInfo info;
    const auto done = RunAll(c, jobs, pp, nullptr, 0, nullptr, &info);
    ExpectAlone(jobs, done, "seed " + std::to_string(seed) + " pp " + std::to_string(pp));
    EXPECT_GT(info.cache.hits, 0) << "pp " << pp;
    EXPECT_GT(info.restores, 0) << "pp " << pp;
    EXPECT_EQ(info.restores, info.cache.hits) << "pp " << pp;
    int64_t cached = 0;
    for (const auto& [id, n] : info.cached) {
      EXPECT_EQ(n % c.block_size, 0);
      EXPECT_LT(n, static_cast<int32_t>(jobs[id].prompt.size()));
      cached += n;
    }
    EXPECT_EQ(cached, info.cache.cached_tokens) << "no preemption here: one lookup per job";
    EXPECT_EQ(info.cache.lookups, static_cast<int64_t>(jobs.size()));
  }
}

// Drives a scheduler one job at a time (each runs to its end before the next is added).
class Sequential {
 public:
  explicit Sequential(const SchedulerConfig& c) : s_(c), exec_(c) {}
  // Runs the prompt for max_new tokens; returns the prompt tokens it reused.
  int32_t Run(const std::vector<int32_t>& prompt, int32_t max_new) {
    const uint64_t id = next_id_++;
    EXPECT_TRUE(s_.Add({id, 0, prompt, max_new}).ok());
    while (static_cast<int32_t>(s_.Generated(id).size()) < max_new) {
      StepPlan plan = s_.Schedule();
      if (plan.empty()) {
        ADD_FAILURE() << "nothing scheduled";
        break;
      }
      for (const PlannedSequence& p : plan.sequences) chunks_.push_back(p);
      const std::vector<int32_t> t = exec_.Run(plan);
      for (size_t k = 0; k < plan.sequences.size(); ++k) {
        s_.Complete(plan.sequences[k].id, t[k] >= 0 ? std::optional<int32_t>(t[k]) : std::nullopt);
      }
    }
    EXPECT_EQ(s_.Generated(id), Alone(prompt, max_new));
    const int32_t cached = s_.CachedTokens(id);
    EXPECT_TRUE(s_.Finish(id));
    return cached;
  }
  Scheduler& scheduler() { return s_; }
  std::vector<PlannedSequence>& chunks() { return chunks_; }

 private:
  Scheduler s_;
  FakeExecutor exec_;
  uint64_t next_id_ = 0;
  std::vector<PlannedSequence> chunks_;
};

std::vector<int32_t> RandomTokens(std::mt19937& rng, int n) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng() % kVocab));
  return t;
}

std::vector<int32_t> Cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(SchedulerPrefixCacheTest, ARepeatedPromptResumesAtItsLastBlockBoundary) {
  std::mt19937 rng(std::random_device{}());
  SchedulerConfig c = CacheConfig();
  Sequential run(c);
  const std::vector<int32_t> prompt = RandomTokens(rng, 30);  // boundary at 28
  EXPECT_EQ(run.Run(prompt, 5), 0);
  // The first run prefilled in chunks that end at 28, where it saved its snapshot.
  bool saved = false;
  for (const PlannedSequence& p : run.chunks()) {
    if (p.save_snapshot >= 0) {
      EXPECT_EQ(p.start_pos + static_cast<int64_t>(p.tokens.size()), 28);
      saved = true;
    }
  }
  EXPECT_TRUE(saved);
  run.chunks().clear();
  EXPECT_EQ(run.Run(prompt, 3), 28);
  ASSERT_FALSE(run.chunks().empty());
  EXPECT_EQ(run.chunks().front().start_pos, 28);
  EXPECT_GE(run.chunks().front().restore_snapshot, 0);
  // A prompt of exactly 8 blocks: the whole prompt matches, the last block is recomputed.
  const std::vector<int32_t> exact = RandomTokens(rng, 32);
  EXPECT_EQ(run.Run(exact, 2), 0);
  EXPECT_EQ(run.Run(exact, 2), 28);
  // A prompt shorter than a block never hits; one token more than a cached prompt does.
  const std::vector<int32_t> tiny = RandomTokens(rng, 3);
  EXPECT_EQ(run.Run(tiny, 2), 0);
  EXPECT_EQ(run.Run(tiny, 2), 0);
  EXPECT_EQ(run.Run(Cat(prompt, {7}), 2), 28);
  const PrefixCacheStats st = run.scheduler().Stats().prefix_cache;
  EXPECT_EQ(st.hits, 3);
  EXPECT_EQ(st.cached_tokens, 28 * 3);
}

// Two prompts that share 30 tokens and then differ: the second one saves a snapshot where it
// leaves the cached blocks (24, the last block boundary inside the shared part), so a third
// prompt with the same 30 tokens resumes there.
TEST(SchedulerPrefixCacheTest, ABranchPointGetsASnapshotForLaterPrompts) {
  std::mt19937 rng(std::random_device{}());
  Sequential run(CacheConfig());
  const std::vector<int32_t> shared = RandomTokens(rng, 30);
  EXPECT_EQ(run.Run(Cat(shared, RandomTokens(rng, 10)), 2), 0);  // saves at 36
  EXPECT_EQ(run.Run(Cat(shared, RandomTokens(rng, 10)), 2), 0);  // saves at 28 and 36
  // Both saved a snapshot at their last block boundary (36); the second also at 28.
  EXPECT_EQ(run.Run(Cat(shared, RandomTokens(rng, 10)), 2), 28);
  EXPECT_EQ(run.Run(shared, 2), 28);
}

// A pool of 2 snapshots and a block pool that cannot hold everything: a long random run with
// many prefixes evicts blocks and snapshots over and over, every output stays exact and
// admission never stalls (RunAll fails on a step with nothing scheduled).
TEST(SchedulerPrefixCacheTest, EvictionUnderPressureNeverChangesOutputsOrDeadlocks) {
  const uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  const std::vector<Job> jobs = SharedPrefixJobs(rng, 150, {8, 13, 21, 34, 40}, 10, 20);
  SchedulerConfig c = CacheConfig();
  c.num_snapshots = 2;
  c.num_blocks = 48;
  for (int pp : {1, 2}) {
    c.micro_batches = pp;
    int64_t preemptions = 0;
    RunInfo info;
    const auto done = RunAll(c, jobs, pp, &preemptions, 0, nullptr, &info);
    ExpectAlone(jobs, done, "seed " + std::to_string(seed) + " pp " + std::to_string(pp));
    EXPECT_GT(info.cache.hits, 0);
    EXPECT_GT(info.cache.evicted_snapshots, 0);
    EXPECT_GT(info.cache.evicted_blocks, 0);
    EXPECT_LE(info.cache.used_snapshots, 2);
  }
}

// Preemption with the cache on (a preempted sequence resumes from its prompt's snapshot when it
// is still there), and group failures (the tree is dropped with the workers' state).
TEST(SchedulerPrefixCacheTest, PreemptionAndGroupFailuresStayExact) {
  const uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  const std::vector<Job> jobs = SharedPrefixJobs(rng, 40, {12, 24}, 8, 60);
  SchedulerConfig c = CacheConfig();
  c.num_blocks = 40;
  c.micro_batches = 2;
  int64_t preemptions = 0;
  RunInfo info;
  auto done = RunAll(c, jobs, 2, &preemptions, 0, nullptr, &info);
  ExpectAlone(jobs, done, "seed " + std::to_string(seed));
  EXPECT_GT(preemptions, 0);
  EXPECT_GT(info.cache.hits, 0);
  int failures = 0;
  RunInfo failed;
  c.num_blocks = 256;
  done = RunAll(c, jobs, 2, nullptr, /*fail_every=*/9, &failures, &failed);
  ExpectAlone(jobs, done, "seed " + std::to_string(seed) + " with failures");
  EXPECT_GT(failures, 3);
}

}  // namespace
}  // namespace tandem::coordinator
