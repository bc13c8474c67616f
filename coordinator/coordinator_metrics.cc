#include "coordinator/coordinator_metrics.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/logging.h"

namespace tandem::coordinator {
namespace {

namespace v1 = ::tandem::v1;

std::string FinishReasonName(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_EOS:
      return "eos";
    case v1::FINISH_REASON_STOP_TOKEN:
      return "stop_token";
    case v1::FINISH_REASON_STOP_STRING:
      return "stop_string";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    case v1::FINISH_REASON_DEADLINE:
      return "deadline";
    default:
      return "error";
  }
}

std::string Seconds(int64_t us) { return absl::StrCat(static_cast<double>(us) / 1e6); }

void AppendPrompt(const v1::GenerateRequest& request, std::vector<core::LogField>* fields) {
  if (request.input_case() == v1::GenerateRequest::kText) {
    fields->push_back({"prompt", request.text()});
  } else {
    fields->push_back({"prompt_ids", absl::StrJoin(request.tokens().ids(), ",")});
  }
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(metrics::Registry* r, CoordinatorMetricsOptions options)
    : registry_(r), options_(options) {
  using metrics::ExponentialBuckets;
  using metrics::LatencyBuckets;
  prompt_tokens_ = r->Counter("tandem_prompt_tokens_total",
                              "Prompt tokens of finished requests (counted when they finish).");
  generation_tokens_ =
      r->Counter("tandem_generation_tokens_total", "Tokens generated (counted as they are).");
  steps_ = r->Counter("tandem_steps_total", "Step plans answered by the workers.");
  step_seconds_ = r->Histogram("tandem_step_duration_seconds",
                               "Time from sending a step plan to its answer (all stages).",
                               ExponentialBuckets(0.0005, 2, 16));
  step_tokens_ = r->Histogram("tandem_step_tokens", "Tokens (prefill + decode) per step.",
                              ExponentialBuckets(1, 2, 14));
  step_sequences_ =
      r->Histogram("tandem_step_sequences", "Sequences per step.", ExponentialBuckets(1, 2, 10));
  itl_seconds_ = r->Histogram("tandem_inter_token_latency_seconds",
                              "Time between consecutive tokens of one request.", LatencyBuckets());
  ttft_seconds_ = r->Histogram("tandem_time_to_first_token_seconds",
                               "Time from admission to a request's first token (requests that "
                               "produced one).",
                               LatencyBuckets());
  queue_seconds_ = r->Histogram("tandem_request_queue_time_seconds",
                                "Time from admission to first being scheduled.", LatencyBuckets());
  e2e_seconds_ =
      r->Histogram("tandem_request_duration_seconds",
                   "Time from admission to the final output (end-to-end).", LatencyBuckets());
  request_prompt_tokens_ =
      r->Histogram("tandem_request_prompt_tokens", "Prompt tokens per finished request.",
                   ExponentialBuckets(1, 2, 20));
  request_generation_tokens_ =
      r->Histogram("tandem_request_generation_tokens", "Generated tokens per finished request.",
                   ExponentialBuckets(1, 2, 20));
  static const char* kStates[] = {"loading", "ready", "recovering"};
  for (int s = 0; s < 3; ++s) {
    r->Callback("tandem_replica_state", "1 for the replica's current state, 0 for the others.",
                metrics::MetricType::kGauge, {{"state", kStates[s]}}, [this, s] {
                  const Engine* e = engine_.load();
                  int now = state_.load();
                  if (e != nullptr && !e->healthy())
                    now = static_cast<int>(ReplicaState::kRecovering);
                  return now == s ? 1.0 : 0.0;
                });
  }
}

void CoordinatorMetrics::AttachLoading(const LoadingState* loading) {
  metrics::Registry* r = registry_;
  r->Callback("tandem_replica_ranks", "Worker ranks of the replica (tp x pp).",
              metrics::MetricType::kGauge, {},
              [loading] { return static_cast<double>(loading->Get().ranks_total); });
  r->Callback("tandem_replica_ranks_loaded",
              "Ranks that have loaded their weights in the first load (tandem_replica_ranks once "
              "loaded).",
              metrics::MetricType::kGauge, {},
              [loading] { return static_cast<double>(loading->Get().ranks_loaded); });
  r->Callback("tandem_replica_loaded_bytes",
              "Checkpoint bytes read in the first load by the ranks that have loaded (a rank "
              "reports its bytes once loaded).",
              metrics::MetricType::kGauge, {},
              [loading] { return static_cast<double>(loading->Get().bytes_loaded); });
}

void CoordinatorMetrics::AttachEngine(const Engine* engine) {
  engine_.store(engine);
  metrics::Registry* r = registry_;
  auto* queue_requests = r->Gauge("tandem_queue_requests", "Requests waiting for admission.");
  auto* queue_tokens =
      r->Gauge("tandem_queue_prompt_tokens", "Prompt tokens of the requests waiting.");
  auto* running = r->Gauge("tandem_running_sequences", "Sequences admitted (holding a slot).");
  auto* slots_used = r->Gauge("tandem_ssm_slots_used", "SSM state slots in use.");
  auto* slots_total = r->Gauge("tandem_ssm_slots_total", "SSM state slots of the replica.");
  auto* blocks_used = r->Gauge(
      "tandem_kv_blocks_used",
      "KV cache blocks in use by sequences (blocks only the prefix cache holds count as free).");
  auto* blocks_total = r->Gauge("tandem_kv_blocks_total", "KV cache blocks of the replica.");
  auto* live = r->Gauge("tandem_live_requests", "Requests accepted and not yet finished.");
  slots_total->Set(engine->options().scheduler.num_slots);
  blocks_total->Set(engine->options().scheduler.num_blocks);
  // One engine snapshot per scrape; the counters below read from it.
  auto ledger = std::make_shared<LedgerStats>();
  auto cache = std::make_shared<PrefixCacheStats>();
  r->AddCollector([=] {
    const SchedulerStats s = engine->Stats();
    *ledger = engine->Ledger();
    *cache = s.prefix_cache;
    queue_requests->Set(static_cast<double>(s.waiting));
    queue_tokens->Set(static_cast<double>(s.queued_prompt_tokens));
    running->Set(static_cast<double>(s.running));
    slots_used->Set(engine->options().scheduler.num_slots - s.free_slots);
    blocks_used->Set(engine->options().scheduler.num_blocks - s.free_blocks);
    live->Set(static_cast<double>(ledger->live));
  });
  // Prefix caching (docs/serving.md, "Prefix caching"); all zero with --prefix-cache off.
  const struct {
    const char* name;
    const char* help;
    metrics::MetricType type;
    int64_t PrefixCacheStats::*field;
  } kCache[] = {
      {"tandem_prefix_cache_blocks", "KV blocks held by the prefix cache (shared, immutable).",
       metrics::MetricType::kGauge, &PrefixCacheStats::cached_blocks},
      {"tandem_prefix_cache_snapshots_used", "Snapshot-pool entries holding a state snapshot.",
       metrics::MetricType::kGauge, &PrefixCacheStats::used_snapshots},
      {"tandem_prefix_cache_snapshots_total", "Snapshot-pool entries of the replica.",
       metrics::MetricType::kGauge, &PrefixCacheStats::num_snapshots},
      {"tandem_prefix_cache_lookups_total", "Admissions that looked their tokens up.",
       metrics::MetricType::kCounter, &PrefixCacheStats::lookups},
      {"tandem_prefix_cache_hits_total", "Admissions that reused a cached prefix.",
       metrics::MetricType::kCounter, &PrefixCacheStats::hits},
      {"tandem_prefix_cache_lookup_tokens_total", "Tokens of the admissions that looked up.",
       metrics::MetricType::kCounter, &PrefixCacheStats::lookup_tokens},
      {"tandem_prefix_cache_cached_tokens_total",
       "Tokens reused from the prefix cache instead of recomputed.", metrics::MetricType::kCounter,
       &PrefixCacheStats::cached_tokens},
      {"tandem_prefix_cache_evicted_blocks_total",
       "Cached KV blocks dropped because an allocation needed them.", metrics::MetricType::kCounter,
       &PrefixCacheStats::evicted_blocks},
      {"tandem_prefix_cache_evicted_snapshots_total",
       "State snapshots dropped for lack of snapshot-pool entries or with their blocks.",
       metrics::MetricType::kCounter, &PrefixCacheStats::evicted_snapshots},
      {"tandem_prefix_cache_snapshots_saved_total", "State snapshots saved by the workers.",
       metrics::MetricType::kCounter, &PrefixCacheStats::snapshots_saved},
  };
  for (const auto& m : kCache) {
    auto field = m.field;
    r->Callback(m.name, m.help, m.type, {},
                [cache, field] { return static_cast<double>((*cache).*field); });
  }
  r->Callback("tandem_preemptions_total",
              "Sequences preempted (state freed, recomputed later) for lack of KV blocks.",
              metrics::MetricType::kCounter, {},
              [ledger] { return static_cast<double>(ledger->preemptions); });
  r->Callback("tandem_requests_accepted_total", "Requests admitted to the queue.",
              metrics::MetricType::kCounter, {},
              [ledger] { return static_cast<double>(ledger->accepted); });
  r->Callback("tandem_replica_failures_total",
              "Times the worker group failed (a worker died, froze or a step failed).",
              metrics::MetricType::kCounter, {},
              [ledger] { return static_cast<double>(ledger->failures); });
  r->Callback("tandem_replica_recoveries_total",
              "Times the worker group was rebuilt and serving resumed after a failure.",
              metrics::MetricType::kCounter, {},
              [ledger] { return static_cast<double>(ledger->recoveries); });
  r->Callback("tandem_request_replays_total",
              "Running requests sent back to the queue by a group failure, to be recomputed.",
              metrics::MetricType::kCounter, {},
              [ledger] { return static_cast<double>(ledger->replays); });
}

void CoordinatorMetrics::OnStep(absl::Duration elapsed, int64_t tokens, int64_t sequences) {
  steps_->Increment();
  step_seconds_->Observe(absl::ToDoubleSeconds(elapsed));
  step_tokens_->Observe(static_cast<double>(tokens));
  step_sequences_->Observe(static_cast<double>(sequences));
}

void CoordinatorMetrics::OnToken(absl::Duration since_previous) {
  generation_tokens_->Increment();
  if (since_previous != absl::InfiniteDuration()) {
    itl_seconds_->Observe(absl::ToDoubleSeconds(since_previous));
  }
}

void CoordinatorMetrics::OnFinished(const FinishedRequest& f) {
  const v1::Usage& u = f.usage;
  const std::string code = absl::StatusCodeToString(f.status.code());
  const std::string reason = FinishReasonName(f.finish_reason);
  registry_
      ->Counter("tandem_requests_finished_total",
                "Requests the engine finished, by final status code and finish reason.",
                {{"code", code}, {"finish_reason", reason}})
      ->Increment();
  prompt_tokens_->Increment(u.prompt_tokens());
  queue_seconds_->Observe(static_cast<double>(u.queue_time_us()) / 1e6);
  if (u.generated_tokens() > 0) ttft_seconds_->Observe(u.first_token_time_us() / 1e6);
  e2e_seconds_->Observe(static_cast<double>(u.total_time_us()) / 1e6);
  request_prompt_tokens_->Observe(u.prompt_tokens());
  request_generation_tokens_->Observe(u.generated_tokens());
  if (!options_.access_log) return;
  std::vector<core::LogField> fields = {
      {"request_id", f.request_id},
      {"trace_id", f.trace_id},
      {"status", code},
      {"finish_reason", reason},
      {"prompt_tokens", absl::StrCat(u.prompt_tokens()), false},
      {"generated_tokens", absl::StrCat(u.generated_tokens()), false},
      {"queue_s", Seconds(u.queue_time_us()), false},
      {"ttft_s", u.generated_tokens() > 0 ? Seconds(u.first_token_time_us()) : "null", false},
      {"total_s", Seconds(u.total_time_us()), false},
      {"preemptions", absl::StrCat(u.preemptions()), false},
  };
  if (!f.status.ok()) fields.push_back({"error", std::string(f.status.message())});
  if (options_.log_prompts) AppendPrompt(f.request, &fields);
  core::LogEvent(core::LogLevel::kInfo, __FILE__, __LINE__, "request finished", fields);
}

void CoordinatorMetrics::OnRefused(const RefusedRequest& r) {
  if (!options_.access_log) return;
  std::vector<core::LogField> fields = {
      {"method", r.method},
      {"request_id", r.request_id},
      {"trace_id", r.trace_id},
      {"status", absl::StatusCodeToString(r.status.code())},
      {"error", std::string(r.status.message())},
  };
  if (options_.log_prompts && r.request != nullptr) AppendPrompt(*r.request, &fields);
  core::LogEvent(core::LogLevel::kInfo, __FILE__, __LINE__, "request refused", fields);
}

}  // namespace tandem::coordinator
