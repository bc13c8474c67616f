// Engine: a sequence the worker could not sample (SequenceResult.error_code, or a token outside
// the vocabulary) ends that request alone with the worker's status; the other requests of the
// same steps finish normally and the engine stays healthy. The executor here stands in for the
// workers' answers only (the worker side is tested with real processes in tests/worker).
#include "coordinator/engine.h"

#include <deque>
#include <future>
#include <map>
#include <mutex>

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

}  // namespace
}  // namespace tandem::coordinator
