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

  // Executes a plan; returns the sampled token per sequence (or -1).
  std::vector<int32_t> Run(const StepPlan& plan) {
    std::vector<int32_t> out;
    std::set<int32_t> slots_in_plan;
    int64_t tokens = 0;
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
      // Blocks: a sequence whose block was taken by another must start over (start_pos 0).
      if (p.start_pos == 0) {  // a new incarnation: forget the blocks it held before
        invalidated_.erase(p.id);
        for (auto it = block_owner_.begin(); it != block_owner_.end();) {
          it = it->second == p.id ? block_owner_.erase(it) : std::next(it);
        }
      }
      EXPECT_EQ(invalidated_.count(p.id), 0u)
          << "seq " << p.id << " continues at " << p.start_pos << " after losing a block";
      for (int32_t b : p.block_table) {
        EXPECT_GE(b, 0);
        EXPECT_LT(b, config_.num_blocks);
        auto [it, fresh] = block_owner_.emplace(b, p.id);
        if (!fresh && it->second != p.id) {
          invalidated_.insert(it->second);
          it->second = p.id;
        }
      }
      h.insert(h.end(), p.tokens.begin(), p.tokens.end());
      tokens += static_cast<int64_t>(p.tokens.size());
      out.push_back(p.sample ? NextToken(h) : -1);
      ++sequences_seen_;
    }
    EXPECT_LE(tokens, config_.max_tokens_per_step);
    return out;
  }
  void Gone(uint64_t id) { invalidated_.erase(id); }
  int64_t sequences_seen() const { return sequences_seen_; }

 private:
  SchedulerConfig config_;
  std::map<int32_t, std::vector<int32_t>> history_;
  std::map<int32_t, uint64_t> block_owner_;
  std::set<uint64_t> invalidated_;
  int64_t sequences_seen_ = 0;
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
std::map<uint64_t, std::vector<int32_t>> RunAll(const SchedulerConfig& config,
                                                const std::vector<Job>& jobs, int pp,
                                                int64_t* preemptions, int fail_every = 0,
                                                int* failures = nullptr) {
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

TEST(SchedulerTest, RandomCancelsLeaveThePoolsFull) {
  std::mt19937 rng(std::random_device{}());
  SchedulerConfig c;
  c.num_slots = 8;
  c.num_blocks = 40;
  c.block_size = 4;
  c.max_tokens_per_step = 48;
  Scheduler s(c);
  FakeExecutor exec(c);
  std::set<uint64_t> live;
  uint64_t next_id = 0;
  int cancels = 0;
  std::vector<StepPlan> in_flight;
  while (cancels < 1000) {
    while (live.size() < 24) {
      const Job j = RandomJobs(rng, 1, 30, 40)[0];
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
}

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
