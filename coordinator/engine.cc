#include "coordinator/engine.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "auth/random.h"
#include "coordinator/stop_matcher.h"
#include "core/logging.h"
#include "core/status.h"

namespace tandem::coordinator {

namespace v1 = ::tandem::v1;
namespace wv1 = ::tandem::worker::v1;

struct Engine::Live {
  uint64_t id = 0;
  std::string request_id;
  std::string owner;
  v1::GenerateRequest request;
  std::vector<int32_t> prompt;
  int32_t max_new_tokens = 1;
  absl::Time accepted;
  absl::Time deadline;
  std::optional<absl::Time> first_scheduled;
  std::optional<absl::Time> first_token;
  absl::Time last_token;
  std::string trace_id;
  std::function<bool()> is_cancelled;
  std::function<void(RequestOutput)> on_output;
  std::unique_ptr<tokenizer::StreamingDetokenizer> detok;
  std::unique_ptr<StopMatcher> stop;
  std::set<int32_t> stop_ids;
  int32_t generated = 0;
  int32_t replays = 0;  // times a group failure sent it back to the queue
  bool cancel_requested = false;
};

Engine::Engine(EngineOptions options, std::shared_ptr<const tokenizer::Tokenizer> tokenizer,
               StepExecutor* executor)
    : options_(std::move(options)),
      tokenizer_(std::move(tokenizer)),
      executor_(executor),
      scheduler_(options_.scheduler),
      max_in_flight_(std::max(1, executor->max_in_flight())) {
  replica_.since = absl::Now();
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  while (!live_.empty()) {
    Terminate(*live_.begin()->second, absl::UnavailableError("the server is shutting down"),
              v1::FINISH_REASON_UNSPECIFIED);
  }
}

ReplicaStatus Engine::Replica() const {
  std::lock_guard<std::mutex> lock(mu_);
  return replica_;
}

LedgerStats Engine::Ledger() const {
  std::lock_guard<std::mutex> lock(mu_);
  LedgerStats s = ledger_;
  s.live = static_cast<int64_t>(live_.size());
  s.preemptions = scheduler_.Stats().preemptions;
  return s;
}

SchedulerStats Engine::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return scheduler_.Stats();
}

void Engine::AddStateListener(StateListener fn) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(std::move(fn));
}

void Engine::NotifyState() {
  for (const StateListener& fn : listeners_) fn(replica_.ready, replica_.reason);
}

absl::StatusOr<std::string> Engine::Submit(Submission submission) {
  const v1::GenerateRequest& req = submission.request;
  absl::Status valid = ValidateRequest(req, options_.limits);
  if (!valid.ok()) return valid;
  const int32_t max_new = EffectiveMaxNewTokens(req, options_.limits);
  std::vector<int32_t> prompt;
  const char* field = "text";
  if (req.input_case() == v1::GenerateRequest::kText) {
    auto ids = tokenizer_->Encode(req.text(), /*add_special_tokens=*/true);
    if (!ids.ok())
      return absl::InvalidArgumentError(absl::StrCat("text: ", ids.status().message()));
    prompt = std::move(*ids);
  } else {
    field = "tokens.ids";
    prompt.assign(req.tokens().ids().begin(), req.tokens().ids().end());
  }
  valid = ValidatePrompt(prompt, max_new, options_.limits, field);
  if (!valid.ok()) return valid;

  auto live = std::make_unique<Live>();
  live->request = req;
  live->prompt = prompt;
  live->max_new_tokens = max_new;
  live->accepted = absl::Now();
  live->deadline = submission.deadline;
  if (req.time_limit_ms() > 0) {
    live->deadline =
        std::min(live->deadline, live->accepted + absl::Milliseconds(req.time_limit_ms()));
  }
  live->trace_id = std::move(submission.trace_id);
  live->is_cancelled = std::move(submission.is_cancelled);
  live->on_output = std::move(submission.on_output);
  if (!req.skip_text()) {
    live->detok = std::make_unique<tokenizer::StreamingDetokenizer>(*tokenizer_, true);
  }
  live->stop = std::make_unique<StopMatcher>(
      std::vector<std::string>(req.stopping().stop().begin(), req.stopping().stop().end()),
      req.stopping().include_stop_str_in_output());
  live->stop_ids.insert(req.stopping().stop_token_ids().begin(),
                        req.stopping().stop_token_ids().end());

  // Server-assigned ids are unguessable: nobody can name (e.g. Abort) a request they were not
  // told the id of.
  std::string assigned;
  if (req.request_id().empty()) {
    ASSIGN_OR_RETURN(const std::string hex, auth::RandomHex(16));
    assigned = absl::StrCat("req-", hex);
  }
  live->owner = std::move(submission.owner);

  std::lock_guard<std::mutex> lock(mu_);
  // While RECOVERING requests queue for the rebuilt group (recovery_queue_timeout bounds the
  // wait).
  if (!accepting_) return absl::UnavailableError("server shutting down");
  live->id = next_id_++;
  live->request_id = req.request_id().empty() ? assigned : req.request_id();
  // Ids are per owner: a caller can neither see nor collide with another caller's ids.
  if (by_request_id_.count({live->owner, live->request_id}) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: '", live->request_id, "' is already in flight"));
  }
  SequenceSpec spec;
  spec.id = live->id;
  spec.priority = req.priority();
  spec.prompt = prompt;
  spec.max_new_tokens = max_new;
  RETURN_IF_ERROR(scheduler_.Add(std::move(spec)));
  ++ledger_.accepted;
  by_request_id_[{live->owner, live->request_id}] = live->id;
  const std::string id = live->request_id;
  live_[live->id] = std::move(live);
  cv_.notify_all();
  return id;
}

bool Engine::Cancel(const std::string& owner, const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_request_id_.find({owner, request_id});
  if (it == by_request_id_.end()) return false;
  live_.at(it->second)->cancel_requested = true;
  cv_.notify_all();
  return true;
}

void Engine::Terminate(Live& live, absl::Status status, v1::FinishReason reason) {
  RequestOutput out;
  out.request_id = live.request_id;
  out.final = true;
  out.status = status;
  out.finish_reason = reason;
  if (status.ok() && reason != v1::FINISH_REASON_STOP_STRING) {
    // The text held back (an incomplete character, a possible stop-string prefix).
    if (live.detok) out.text_delta = live.stop->Append(live.detok->Finish());
    out.text_delta += live.stop->Finish();
  }
  out.matched_stop = live.stop->matched_stop();
  const absl::Time now = absl::Now();
  v1::Usage& u = out.usage;
  u.set_prompt_tokens(static_cast<int32_t>(live.prompt.size()));
  u.set_generated_tokens(live.generated);
  u.set_queue_time_us(
      absl::ToInt64Microseconds(live.first_scheduled.value_or(now) - live.accepted));
  if (live.first_token) {
    u.set_first_token_time_us(absl::ToInt64Microseconds(*live.first_token - live.accepted));
  }
  u.set_total_time_us(absl::ToInt64Microseconds(now - live.accepted));
  u.set_preemptions(scheduler_.Preemptions(live.id));
  u.set_cached_tokens(scheduler_.CachedTokens(live.id));
  if (options_.observer) {
    options_.observer->OnFinished(
        {live.request_id, live.trace_id, live.request, status, reason, u});
  }
  scheduler_.Finish(live.id);
  ++ledger_.terminated;
  ++ledger_.by_code[status.code()];
  auto on_output = std::move(live.on_output);
  by_request_id_.erase({live.owner, live.request_id});
  live_.erase(live.id);  // `live` is gone from here on
  on_output(std::move(out));
}

void Engine::OnToken(Live& live, int32_t token, const wv1::SequenceResult& result) {
  const absl::Time now = absl::Now();
  if (options_.observer) {
    options_.observer->OnToken(live.first_token ? now - live.last_token : absl::InfiniteDuration());
  }
  if (!live.first_token) live.first_token = now;
  live.last_token = now;
  ++live.generated;
  RequestOutput out;
  out.request_id = live.request_id;
  out.token_ids.push_back(token);
  if (live.request.logprobs().logprobs() || live.request.logprobs().top_logprobs() > 0) {
    v1::TokenLogprob lp;
    lp.set_token_id(token);
    lp.set_logprob(result.logprob());
    for (const auto& t : result.top_logprobs()) {
      auto* top = lp.add_top();
      top->set_token_id(t.token_id());
      top->set_logprob(t.logprob());
    }
    out.logprobs.push_back(std::move(lp));
  }
  const auto& st = live.request.stopping();
  const bool may_stop = live.generated >= st.min_new_tokens();
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  if (may_stop && !st.ignore_eos() && token == options_.eos_token_id) {
    reason = v1::FINISH_REASON_EOS;
  } else if (may_stop && live.stop_ids.count(token) > 0) {
    reason = v1::FINISH_REASON_STOP_TOKEN;
  }
  if (reason == v1::FINISH_REASON_UNSPECIFIED && live.detok) {
    const std::string delta = live.detok->Add(token);
    if (may_stop) {
      out.text_delta = live.stop->Append(delta);
      if (live.stop->matched()) reason = v1::FINISH_REASON_STOP_STRING;
    } else {
      // Before min_new_tokens stop strings do not apply; keep the matcher's view of the text.
      out.text_delta = delta;
    }
  }
  if (reason == v1::FINISH_REASON_UNSPECIFIED && live.generated >= live.max_new_tokens) {
    reason = v1::FINISH_REASON_LENGTH;
  }
  live.on_output(std::move(out));
  if (reason != v1::FINISH_REASON_UNSPECIFIED) Terminate(live, absl::OkStatus(), reason);
}

void Engine::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Cancellations, aborts and deadlines: free state before planning.
    const absl::Time now = absl::Now();
    std::vector<uint64_t> ids;
    for (auto& [id, live] : live_) ids.push_back(id);
    for (uint64_t id : ids) {
      Live& live = *live_.at(id);
      // The deadline first: a gRPC deadline also cancels the call (its context, and the stream
      // reactor's OnCancel), and a call that ran out of time ends and is counted as
      // DEADLINE_EXCEEDED, not CANCELLED.
      if (now >= live.deadline) {
        Terminate(live,
                  absl::DeadlineExceededError(absl::StrCat("request ", live.request_id,
                                                           " passed its deadline after ",
                                                           live.generated, " generated tokens")),
                  v1::FINISH_REASON_DEADLINE);
      } else if (live.cancel_requested || (live.is_cancelled && live.is_cancelled())) {
        Terminate(live,
                  absl::CancelledError(absl::StrCat("request ", live.request_id, " was cancelled")),
                  v1::FINISH_REASON_CANCELLED);
      } else if (end_all_) {
        Terminate(live, *end_all_, v1::FINISH_REASON_UNSPECIFIED);
      }
    }
    if (!quiesced_) Requeue();
    if (!ready_) {
      ExpireWaiting(now);
      cv_.wait_for(lock, std::chrono::milliseconds(20));
      continue;
    }
    // Fill the pipeline: up to max_in_flight plans of disjoint sequences (the scheduler skips
    // sequences whose step is still in flight).
    while (static_cast<int>(in_flight_.size()) < max_in_flight_) {
      StepPlan plan = scheduler_.Schedule();
      if (plan.empty()) break;
      wv1::StepRequest request = BuildRequest(plan);
      ++ledger_.steps;
      lock.unlock();
      absl::Status sent = executor_->Submit(std::move(request));
      lock.lock();
      if (in_flight_.empty()) head_started_ = absl::Now();
      in_flight_.push_back(std::move(plan));
      in_flight_sent_.push_back(absl::Now());
      if (!sent.ok()) {
        Break(sent.message());
        break;
      }
    }
    if (!ready_ || !quiesced_) continue;
    if (in_flight_.empty()) {
      cv_.wait_for(lock, std::chrono::milliseconds(live_.empty() ? 100 : 5));
      continue;
    }
    // Wait for the oldest plan's answer in short slices, so deadlines, cancellations and a
    // failure reported by the detector are acted on while a step is stuck.
    lock.unlock();
    absl::StatusOr<std::optional<wv1::StepResponse>> polled =
        executor_->Poll(absl::Milliseconds(20));
    lock.lock();
    if (!ready_ || !quiesced_) continue;  // failed meanwhile: the plans are forgotten
    if (polled.ok() && !polled->has_value()) {
      const absl::Duration allowed = StepDeadline(in_flight_.front().num_tokens);
      if (absl::Now() - head_started_ > allowed) {
        Break(absl::StrCat("a step of ", in_flight_.front().num_tokens,
                           " tokens was not answered within ", absl::FormatDuration(allowed),
                           " (its deadline from the measured step times)"));
      }
      continue;
    }
    StepPlan plan = std::move(in_flight_.front());
    in_flight_.pop_front();
    const absl::Time sent = in_flight_sent_.front();
    in_flight_sent_.pop_front();
    const absl::Time answered = absl::Now();
    if (polled.ok()) {
      // The step's own time: from when it became the oldest plan in flight.
      const double took = absl::ToDoubleSeconds(answered - std::max(sent, head_started_));
      const double per_token = took / static_cast<double>(std::max<int64_t>(1, plan.num_tokens));
      seconds_per_token_ =
          group_steps_ == 0 ? per_token : 0.8 * seconds_per_token_ + 0.2 * per_token;
      ++group_steps_;
    }
    head_started_ = answered;
    if (options_.observer && polled.ok()) {
      options_.observer->OnStep(answered - sent, plan.num_tokens,
                                static_cast<int64_t>(plan.sequences.size()));
    }
    if (!polled.ok()) {
      Break(polled.status().ToString());
      continue;
    }
    const wv1::StepResponse& response = **polled;
    if (response.results_size() != static_cast<int>(plan.sequences.size())) {
      Break(absl::StrCat("the last stage answered ", response.results_size(), " results for ",
                         plan.sequences.size(), " sequences"));
      continue;
    }
    for (size_t k = 0; k < plan.sequences.size(); ++k) {
      const PlannedSequence& p = plan.sequences[k];
      const wv1::SequenceResult& r = response.results(static_cast<int>(k));
      auto it = live_.find(p.id);
      if (it == live_.end()) continue;  // ended while the step ran
      if (p.sample) {
        // A failure of this sequence alone (the worker could not sample it) ends this request
        // only; the replica and everyone else's requests go on.
        absl::Status failed;
        if (r.error_code() != 0) {
          failed = absl::Status(static_cast<absl::StatusCode>(r.error_code()), r.error());
        } else if (r.token_id() < 0 || r.token_id() >= options_.limits.vocab_size) {
          failed = absl::InternalError(absl::StrCat("the worker sampled token ", r.token_id(),
                                                    ", outside the vocabulary [0, ",
                                                    options_.limits.vocab_size, ")"));
        }
        if (!failed.ok()) {
          scheduler_.Complete(p.id, std::nullopt);
          TANDEM_LOG(WARNING) << "request " << it->second->request_id << " failed: " << failed;
          Terminate(*it->second, std::move(failed), v1::FINISH_REASON_UNSPECIFIED);
          continue;
        }
        scheduler_.Complete(p.id, r.token_id());
        OnToken(*it->second, r.token_id(), r);
      } else {
        scheduler_.Complete(p.id, std::nullopt);
      }
    }
  }
}

absl::Duration Engine::StepDeadline(int64_t tokens) const {
  absl::Duration d = options_.step_timeout_floor +
                     absl::Seconds(options_.step_timeout_factor * seconds_per_token_ *
                                   static_cast<double>(std::max<int64_t>(1, tokens)));
  // The first steps of a group may warm caches, compile or allocate: no measurement yet.
  constexpr int64_t kWarmupSteps = 8;
  if (group_steps_ < kWarmupSteps) d = std::max(d, options_.step_timeout_warmup);
  return d;
}

void Engine::Requeue() {
  // Plans in flight belong to the failed group: never answered, never completed.
  in_flight_.clear();
  in_flight_sent_.clear();
  const std::vector<uint64_t> started = scheduler_.RequeueAll();
  for (uint64_t id : started) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    Live& live = *it->second;
    if (live.replays >= options_.max_replays) {
      Terminate(live,
                absl::UnavailableError(absl::StrCat(
                    "request ", live.request_id, " was interrupted by a worker failure ",
                    live.replays + 1, " times (retry budget ", options_.max_replays,
                    "): ", replica_.last_failure)),
                v1::FINISH_REASON_UNSPECIFIED);
      continue;
    }
    ++live.replays;
    ++ledger_.replays;
  }
  TANDEM_LOG(WARNING) << started.size()
                      << " running requests requeued for replay after: " << replica_.last_failure;
  seconds_per_token_ = 0.0;
  group_steps_ = 0;
  quiesced_ = true;
  cv_.notify_all();
}

void Engine::ExpireWaiting(absl::Time now) {
  std::vector<uint64_t> expired;
  for (auto& [id, live] : live_) {
    if (now - std::max(live->accepted, replica_.since) > options_.recovery_queue_timeout) {
      expired.push_back(id);
    }
  }
  for (uint64_t id : expired) {
    Terminate(*live_.at(id),
              absl::UnavailableError(absl::StrCat(
                  "no replica became ready within ",
                  absl::FormatDuration(options_.recovery_queue_timeout),
                  " (the recovery queue timeout); the group failed: ", replica_.reason)),
              v1::FINISH_REASON_UNSPECIFIED);
  }
}

void Engine::Break(absl::string_view reason) { MarkFailed(reason); }

void Engine::MarkFailed(absl::string_view reason) {
  if (!ready_) return;
  ready_ = false;
  quiesced_ = false;
  ++ledger_.failures;
  replica_.ready = false;
  replica_.reason = std::string(reason);
  replica_.last_failure = std::string(reason);
  replica_.since = absl::Now();
  TANDEM_LOG(ERROR) << "the replica failed, recovering: " << reason;
  NotifyState();
  cv_.notify_all();
}

bool Engine::WaitQuiesced(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return quiesced_; });
}

absl::Status Engine::Resume() {
  std::lock_guard<std::mutex> lock(mu_);
  if (ready_) return absl::OkStatus();
  if (!quiesced_) {
    return absl::FailedPreconditionError(
        "Resume before the engine requeued the failed group's requests (WaitQuiesced)");
  }
  ready_ = true;
  ++ledger_.recoveries;
  TANDEM_LOG(INFO) << "the replica is ready again after "
                   << absl::FormatDuration(absl::Now() - replica_.since)
                   << " (failure: " << replica_.reason << ")";
  replica_.ready = true;
  replica_.reason.clear();
  replica_.since = absl::Now();
  NotifyState();
  cv_.notify_all();
  return absl::OkStatus();
}

void Engine::StopAccepting() {
  std::lock_guard<std::mutex> lock(mu_);
  accepting_ = false;
}

void Engine::EndAll(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  end_all_ = std::move(status);
  cv_.notify_all();
}

void Engine::Fail(absl::string_view reason) {
  std::lock_guard<std::mutex> lock(mu_);
  MarkFailed(reason);
}

wv1::StepRequest Engine::BuildRequest(const StepPlan& plan) {
  wv1::StepRequest request;
  request.set_step_id(next_step_id_++);
  for (const PlannedSequence& p : plan.sequences) {
    Live& live = *live_.at(p.id);
    if (!live.first_scheduled) live.first_scheduled = absl::Now();
    wv1::SequenceStep* s = request.add_sequences();
    s->set_slot(p.slot);
    s->mutable_block_table()->Add(p.block_table.begin(), p.block_table.end());
    s->set_start_pos(p.start_pos);
    s->mutable_token_ids()->Add(p.tokens.begin(), p.tokens.end());
    s->set_logits(p.sample ? wv1::LOGITS_LAST : wv1::LOGITS_NONE);
    s->set_prompt_len(p.prompt_len);
    s->set_request_tag(p.id);
    s->set_trace_id(live.trace_id);  // for the workers' logs
    if (p.restore_snapshot >= 0) s->set_restore_snapshot(p.restore_snapshot);
    if (p.save_snapshot >= 0) s->set_save_snapshot(p.save_snapshot);
    if (p.sample) {
      const auto& sp = live.request.sampling();
      wv1::SamplingParams* w = s->mutable_sampling();
      // Bounded by what they mean: top_k >= the vocabulary keeps everything (off), a temperature
      // too small to divide logits by without overflow is greedy (its limit).
      const float temperature = sp.has_temperature() ? sp.temperature() : 0.0f;
      w->set_temperature(temperature < kMinTemperature ? 0.0f : temperature);
      w->set_top_k(sp.top_k() >= options_.limits.vocab_size ? 0 : sp.top_k());
      w->set_top_p(sp.has_top_p() ? sp.top_p() : 1.0f);
      w->set_min_p(sp.min_p());
      w->set_repetition_penalty(sp.has_repetition_penalty() ? sp.repetition_penalty() : 1.0f);
      w->set_presence_penalty(sp.presence_penalty());
      w->set_frequency_penalty(sp.frequency_penalty());
      // Unseeded requests get a seed from their id (still reproducible per server run).
      w->set_seed(sp.has_seed() ? sp.seed() : 0x9E3779B97F4A7C15ull * p.id);
      s->set_top_logprobs(live.request.logprobs().top_logprobs());
    }
  }
  return request;
}

}  // namespace tandem::coordinator
