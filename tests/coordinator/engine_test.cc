// Engine: a sequence the worker could not sample (SequenceResult.error_code, or a token outside
// the vocabulary) ends that request alone with the worker's status; the other requests of the
// same steps finish normally and the engine stays healthy. The executor here stands in for the
// workers' answers only (the worker side is tested with real processes in tests/worker).
#include "coordinator/engine.h"

#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

namespace v1 = ::tandem::v1;
namespace wv1 = ::tandem::worker::v1;

constexpr int32_t kVocab = 4096;
constexpr int32_t kFailTopK = 77;        // the worker reports an error for this sequence
constexpr int32_t kOutOfVocabTopK = 78;  // the worker answers a token outside the vocabulary

class ScriptedExecutor : public StepExecutor {
 public:
  absl::Status Submit(wv1::StepRequest request) override {
    wv1::StepResponse response;
    response.set_step_id(request.step_id());
    for (const wv1::SequenceStep& s : request.sequences()) {
      wv1::SequenceResult* r = response.add_results();
      r->set_request_tag(s.request_tag());
      r->set_token_id(s.logits() == wv1::LOGITS_NONE ? -1 : 300);
      if (s.logits() == wv1::LOGITS_NONE) continue;
      if (s.sampling().top_k() == kFailTopK) {
        r->set_token_id(-1);
        r->set_error_code(static_cast<int32_t>(absl::StatusCode::kInvalidArgument));
        r->set_error("sampling.top_k: refused by the worker");
      } else if (s.sampling().top_k() == kOutOfVocabTopK) {
        r->set_token_id(kVocab + 5);
      }
    }
    pending_.push_back(std::move(response));
    return absl::OkStatus();
  }
  absl::StatusOr<wv1::StepResponse> Await() override {
    wv1::StepResponse r = std::move(pending_.front());
    pending_.pop_front();
    return r;
  }

 private:
  std::deque<wv1::StepResponse> pending_;
};

TEST(EngineTest, ASequenceTheWorkerCannotSampleEndsAloneWithItsStatus) {
  auto tok = tokenizer::Tokenizer::FromFile(std::string(TANDEM_SOURCE_DIR) +
                                            "/tests/testdata/tokenizer/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EngineOptions options;
  options.limits.vocab_size = kVocab;
  options.limits.max_context = 1024;
  options.eos_token_id = 0;
  ScriptedExecutor executor;
  Engine engine(options, std::shared_ptr<const tokenizer::Tokenizer>(std::move(*tok)), &executor);

  struct Outcome {
    absl::Status status;
    int tokens = 0;
  };
  std::vector<std::promise<Outcome>> done(6);
  std::vector<Outcome> partial(done.size());
  for (size_t i = 0; i < done.size(); ++i) {
    Submission sub;
    sub.request.mutable_tokens()->add_ids(5);
    sub.request.mutable_stopping()->set_max_new_tokens(8);
    sub.request.mutable_stopping()->set_ignore_eos(true);
    sub.request.mutable_sampling()->set_temperature(1.0f);
    if (i == 1) sub.request.mutable_sampling()->set_top_k(kFailTopK);
    if (i == 4) sub.request.mutable_sampling()->set_top_k(kOutOfVocabTopK);
    sub.on_output = [&, i](RequestOutput out) {
      partial[i].tokens += static_cast<int>(out.token_ids.size());
      if (out.final) {
        partial[i].status = out.status;
        done[i].set_value(partial[i]);
      }
    };
    ASSERT_TRUE(engine.Submit(std::move(sub)).ok());
  }
  for (size_t i = 0; i < done.size(); ++i) {
    auto f = done[i].get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready) << i;
    const Outcome o = f.get();
    if (i == 1) {
      EXPECT_EQ(o.status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(o.status.message().find("sampling.top_k"), std::string::npos) << o.status;
      EXPECT_EQ(o.tokens, 0);
    } else if (i == 4) {
      EXPECT_EQ(o.status.code(), absl::StatusCode::kInternal) << o.status;
      EXPECT_NE(o.status.message().find("outside the vocabulary"), std::string::npos);
    } else {
      EXPECT_TRUE(o.status.ok()) << i << ": " << o.status;
      EXPECT_EQ(o.tokens, 8) << i;
    }
  }
  EXPECT_TRUE(engine.healthy());
  const LedgerStats ledger = engine.Ledger();
  EXPECT_EQ(ledger.accepted, 6);
  EXPECT_EQ(ledger.terminated, 6);
  EXPECT_EQ(ledger.by_code.at(absl::StatusCode::kOk), 4);
  const SchedulerStats stats = engine.Stats();
  EXPECT_EQ(stats.free_slots, options.scheduler.num_slots);
}

// Answers every sampled sequence with a token that depends only on its position (as seeded
// sampling does), so a replayed request must continue with exactly the tokens an uninterrupted run
// gives. The test can make the next step fail or hang (never answered, like a frozen worker).
class FaultyExecutor : public StepExecutor {
 public:
  static int32_t TokenAt(int64_t position) { return 100 + static_cast<int32_t>(position % 97); }

  absl::Status Submit(wv1::StepRequest request) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++submitted_;
    wv1::StepResponse response;
    response.set_step_id(request.step_id());
    for (const wv1::SequenceStep& s : request.sequences()) {
      wv1::SequenceResult* r = response.add_results();
      r->set_request_tag(s.request_tag());
      r->set_token_id(s.logits() == wv1::LOGITS_NONE ? -1
                                                     : TokenAt(s.start_pos() + s.token_ids_size()));
    }
    pending_.push_back(std::move(response));
    return absl::OkStatus();
  }
  absl::StatusOr<wv1::StepResponse> Await() override {
    return absl::InternalError("the engine polls");
  }
  absl::StatusOr<std::optional<wv1::StepResponse>> Poll(absl::Duration max_wait) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (fail_next_) {
      fail_next_ = false;
      pending_.clear();
      return absl::UnavailableError("worker rank 1 (pid 4242) was killed by signal 9");
    }
    if (hang_) {
      lock.unlock();
      absl::SleepFor(max_wait);
      return std::nullopt;
    }
    if (pending_.empty()) return absl::FailedPreconditionError("no step is in flight");
    wv1::StepResponse r = std::move(pending_.front());
    pending_.pop_front();
    // A little time per step, so requests are mid-stream when the test strikes.
    lock.unlock();
    absl::SleepFor(absl::Milliseconds(1));
    return std::optional<wv1::StepResponse>(std::move(r));
  }
  void FailNextStep() {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_ = true;
  }
  void Hang(bool hang) {
    std::lock_guard<std::mutex> lock(mu_);
    hang_ = hang;
    if (!hang) pending_.clear();  // the stuck plans died with the group
  }
  int64_t submitted() {
    std::lock_guard<std::mutex> lock(mu_);
    return submitted_;
  }

 private:
  std::mutex mu_;
  std::deque<wv1::StepResponse> pending_;
  bool fail_next_ = false;
  bool hang_ = false;
  int64_t submitted_ = 0;
};

std::shared_ptr<const tokenizer::Tokenizer> TestTokenizer() {
  auto tok = tokenizer::Tokenizer::FromFile(std::string(TANDEM_SOURCE_DIR) +
                                            "/tests/testdata/tokenizer/tokenizer.json");
  EXPECT_TRUE(tok.ok()) << tok.status();
  return std::shared_ptr<const tokenizer::Tokenizer>(std::move(*tok));
}

EngineOptions FaultOptions() {
  EngineOptions options;
  options.limits.vocab_size = kVocab;
  options.limits.max_context = 4096;
  options.scheduler.num_blocks = 1024;
  options.eos_token_id = 0;
  return options;
}

// Collects one request's outputs; `done` is set with the final one.
struct Collected {
  std::mutex mu;
  std::vector<int32_t> tokens;
  absl::Status status;
  std::promise<void> done;
  absl::Time ended;
};

Submission Request(std::vector<int32_t> prompt, int max_new, Collected* c) {
  Submission sub;
  for (int32_t id : prompt) sub.request.mutable_tokens()->add_ids(id);
  sub.request.mutable_stopping()->set_max_new_tokens(max_new);
  sub.request.mutable_stopping()->set_ignore_eos(true);
  sub.request.set_skip_text(true);
  sub.on_output = [c](RequestOutput out) {
    std::lock_guard<std::mutex> lock(c->mu);
    c->tokens.insert(c->tokens.end(), out.token_ids.begin(), out.token_ids.end());
    if (out.final) {
      c->status = out.status;
      c->ended = absl::Now();
      c->done.set_value();
    }
  };
  return sub;
}

bool WaitFor(const std::function<bool()>& pred, absl::Duration limit) {
  const absl::Time until = absl::Now() + limit;
  while (!pred()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// A failed group: the running requests go back to the queue, the engine turns RECOVERING (state
// listeners told), keeps accepting, and after Resume every request completes with exactly the
// tokens an uninterrupted run gives (no token lost, none repeated).
TEST(EngineRecoveryTest, RunningRequestsAreReplayedAfterResumeWithTheSameTokens) {
  FaultyExecutor executor;
  Engine engine(FaultOptions(), TestTokenizer(), &executor);
  std::vector<std::pair<bool, std::string>> changes;
  std::mutex changes_mu;
  engine.AddStateListener([&](bool ready, const std::string& reason) {
    std::lock_guard<std::mutex> lock(changes_mu);
    changes.emplace_back(ready, reason);
  });
  constexpr int kRequests = 4;
  constexpr int kMaxNew = 300;
  std::vector<std::unique_ptr<Collected>> c;
  for (int i = 0; i < kRequests; ++i) {
    c.push_back(std::make_unique<Collected>());
    ASSERT_TRUE(engine.Submit(Request({5, 6, 7 + i}, kMaxNew, c.back().get())).ok());
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(c[0]->mu);
        return c[0]->tokens.size() >= 20;
      },
      absl::Seconds(20)));
  executor.FailNextStep();
  ASSERT_TRUE(WaitFor([&] { return !engine.healthy(); }, absl::Seconds(10)));
  ASSERT_TRUE(engine.WaitQuiesced(absl::Seconds(10)));
  // Accepted while recovering; nothing is sent to the failed group.
  auto late = std::make_unique<Collected>();
  ASSERT_TRUE(engine.Submit(Request({9, 9}, 5, late.get())).ok());
  const int64_t sent = executor.submitted();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(executor.submitted(), sent);
  EXPECT_FALSE(engine.Replica().ready);
  EXPECT_NE(engine.Replica().reason.find("worker rank 1"), std::string::npos);
  ASSERT_TRUE(engine.Resume().ok());
  for (auto* r : {c[0].get(), c[1].get(), c[2].get(), c[3].get(), late.get()}) {
    ASSERT_EQ(r->done.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  }
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_TRUE(c[i]->status.ok()) << i << ": " << c[i]->status;
    ASSERT_EQ(c[i]->tokens.size(), static_cast<size_t>(kMaxNew)) << i;
    for (int k = 0; k < kMaxNew; ++k) {
      ASSERT_EQ(c[i]->tokens[k], FaultyExecutor::TokenAt(3 + k))
          << "request " << i << " token " << k;
    }
  }
  EXPECT_TRUE(late->status.ok()) << late->status;
  EXPECT_EQ(late->tokens.size(), 5u);
  const LedgerStats ledger = engine.Ledger();
  EXPECT_EQ(ledger.failures, 1);
  EXPECT_EQ(ledger.recoveries, 1);
  EXPECT_EQ(ledger.replays, kRequests);  // all four had started (they fit one step)
  EXPECT_EQ(ledger.accepted, ledger.terminated);
  EXPECT_EQ(ledger.by_code.at(absl::StatusCode::kOk), kRequests + 1);
  EXPECT_TRUE(engine.healthy());
  EXPECT_EQ(engine.Replica().last_failure, changes.at(0).second);
  std::lock_guard<std::mutex> lock(changes_mu);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_FALSE(changes[0].first);
  EXPECT_TRUE(changes[1].first);
}

// With max_replays 0 a running request ends UNAVAILABLE naming the failure; one still waiting in
// the queue is not charged and completes after Resume.
TEST(EngineRecoveryTest, ARequestPastItsRetryBudgetEndsUnavailableWithTheReason) {
  FaultyExecutor executor;
  EngineOptions options = FaultOptions();
  options.max_replays = 0;
  options.scheduler.num_slots = 1;  // the second request waits in the queue
  Engine engine(options, TestTokenizer(), &executor);
  Collected running, waiting;
  ASSERT_TRUE(engine.Submit(Request({5, 6}, 200, &running)).ok());
  ASSERT_TRUE(engine.Submit(Request({7, 8}, 3, &waiting)).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(running.mu);
        return running.tokens.size() >= 5;
      },
      absl::Seconds(20)));
  executor.FailNextStep();
  ASSERT_EQ(running.done.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_EQ(running.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(running.status.message().find("retry budget 0"), std::string::npos) << running.status;
  EXPECT_NE(running.status.message().find("killed by signal 9"), std::string::npos)
      << running.status;
  ASSERT_TRUE(engine.WaitQuiesced(absl::Seconds(10)));
  ASSERT_TRUE(engine.Resume().ok());
  ASSERT_EQ(waiting.done.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_TRUE(waiting.status.ok()) << waiting.status;
  EXPECT_EQ(engine.Ledger().replays, 0);
}

// A step that is never answered (a frozen worker the detector has not yet caught): deadlines and
// Cancel still end their requests within a poll slice, and the step's own deadline (the floor,
// as nothing has been measured) turns the engine RECOVERING.
TEST(EngineRecoveryTest, DeadlinesAndCancelAreHonouredWhileAStepIsStuck) {
  FaultyExecutor executor;
  EngineOptions options = FaultOptions();
  options.step_timeout_floor = absl::Milliseconds(1500);
  options.step_timeout_warmup = absl::Milliseconds(1500);
  Engine engine(options, TestTokenizer(), &executor);
  Collected timed, cancelled;
  Submission a = Request({5, 6}, 2000, &timed);
  a.request.set_time_limit_ms(300);
  Submission b = Request({7, 8}, 2000, &cancelled);
  b.request.set_request_id("to-cancel");
  executor.Hang(true);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(engine.Submit(std::move(a)).ok());
  ASSERT_TRUE(engine.Submit(std::move(b)).ok());
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_TRUE(engine.Cancel("", "to-cancel"));
  const absl::Time cancel_sent = absl::Now();
  ASSERT_EQ(cancelled.done.get_future().wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
  ASSERT_EQ(timed.done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(cancelled.status.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(cancelled.ended - cancel_sent, absl::Milliseconds(500));
  EXPECT_EQ(timed.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(timed.ended - start, absl::Milliseconds(900));
  EXPECT_TRUE(engine.healthy());  // the stuck step has not reached its own deadline yet
  ASSERT_TRUE(WaitFor([&] { return !engine.healthy(); }, absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1400));
  EXPECT_NE(engine.Replica().reason.find("was not answered within"), std::string::npos)
      << engine.Replica().reason;
  executor.Hang(false);
  ASSERT_TRUE(engine.WaitQuiesced(absl::Seconds(10)));
  ASSERT_TRUE(engine.Resume().ok());
  EXPECT_EQ(engine.Ledger().live, 0);
}

// No group comes back: requests queued meanwhile end UNAVAILABLE after recovery_queue_timeout.
TEST(EngineRecoveryTest, RequestsWaitingForARecoveryThatNeverComesEndUnavailable) {
  FaultyExecutor executor;
  EngineOptions options = FaultOptions();
  options.recovery_queue_timeout = absl::Milliseconds(300);
  Engine engine(options, TestTokenizer(), &executor);
  engine.Fail("worker rank 0 did not answer heartbeats for 1.2s");
  EXPECT_FALSE(engine.healthy());
  Collected c;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(engine.Submit(Request({5}, 4, &c)).ok());
  ASSERT_EQ(c.done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(c.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(c.status.message().find("recovery queue timeout"), std::string::npos) << c.status;
  EXPECT_NE(c.status.message().find("heartbeats"), std::string::npos) << c.status;
  EXPECT_GE(c.ended - start, absl::Milliseconds(250));
  EXPECT_EQ(executor.submitted(), 0);
}

}  // namespace
}  // namespace tandem::coordinator
