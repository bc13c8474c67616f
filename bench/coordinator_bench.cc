// The coordinator's own CPU cost per step, without a model. Not a test.
//
// BM_EngineDecode: a real tandem::coordinator::Engine (scheduler, step-plan building, streaming
// detokenizer, stop strings, per-token outputs) over an in-process StepExecutor that answers at
// once: one SequenceResult per planned sequence, the token a hash of (request_tag, position).
// N requests (ignore_eos, max_new_tokens far beyond the run) are all decoding before the timing
// starts, so every step carries N decodes. The engine runs on its own thread; the benchmark
// thread waits for batches of kStepsPerIteration steps and reads the engine thread's CPU clock.
// Counters: engine_cpu_us_per_step (the engine thread, including the fake executor),
// executor_cpu_us_per_step (the fake executor alone), wall_us_per_step, steps/s, tokens/s.
//
// BM_EngineDecode/metrics: the text mode with the Prometheus metrics on (CoordinatorMetrics as the
// engine's observer, a scrape of the registry every iteration from the benchmark thread), to hold
// its cost against the text mode (docs/observability.md: within 5% of the engine's CPU per step).
//
// BM_SchedulerStep: Scheduler::Schedule() + Complete() for every planned sequence, N running.
// BM_SchedulerStepPrefixCache: the same with the prefix cache on (shared prompts).
//
// bench/results/coordinator_cpu.json holds a run (see docs/benchmarks.md for the command).
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/bench_context.h"
#include "benchmark/benchmark.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/engine.h"
#include "coordinator/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace coord = ::tandem::coordinator;
namespace v1 = ::tandem::v1;
namespace wv1 = ::tandem::worker::v1;

constexpr int64_t kStepsPerIteration = 32;
constexpr int32_t kPromptLen = 64;
constexpr int32_t kMaxNewTokens = 1 << 16;
// tests/testdata/tokenizer/tokenizer.json: ids below 1000 are special tokens (4096 in all); the
// fake model samples ordinary ones so the detokenizer produces text.
constexpr int32_t kFirstOrdinaryToken = 1000;

int64_t CpuNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A token id in [first_token, vocab).
int32_t TokenFor(uint64_t tag, int64_t position, int32_t first_token, int32_t vocab) {
  const uint64_t h = Mix(tag * 0x100000001B3ull ^ static_cast<uint64_t>(position));
  return first_token + static_cast<int32_t>(h % static_cast<uint64_t>(vocab - first_token));
}

// Answers every plan at once. Submit/Await run on the engine thread.
class InstantExecutor : public coord::StepExecutor {
 public:
  explicit InstantExecutor(int32_t vocab) : vocab_(vocab) {}

  absl::Status Submit(wv1::StepRequest request) override {
    const int64_t t0 = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    if (!engine_clock_set_.load(std::memory_order_acquire)) {
      pthread_getcpuclockid(pthread_self(), &engine_clock_);
      engine_clock_set_.store(true, std::memory_order_release);
    }
    wv1::StepResponse response;
    response.set_step_id(request.step_id());
    for (const wv1::SequenceStep& s : request.sequences()) {
      wv1::SequenceResult* r = response.add_results();
      r->set_request_tag(s.request_tag());
      r->set_token_id(s.logits() == wv1::LOGITS_NONE
                          ? -1
                          : TokenFor(s.request_tag(), s.start_pos() + s.token_ids_size(),
                                     kFirstOrdinaryToken, vocab_));
    }
    pending_.push_back(std::move(response));
    // seq_cst on steps_ and wake_at_ (with WaitForSteps' store and load): either the waiter sees
    // the new count or this thread sees the new target, so no wakeup is lost.
    const int64_t steps = steps_.fetch_add(1) + 1;
    executor_ns_.fetch_add(CpuNs(CLOCK_THREAD_CPUTIME_ID) - t0, std::memory_order_relaxed);
    if (steps >= wake_at_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<wv1::StepResponse> Await() override {
    const int64_t t0 = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    if (pending_.empty()) return absl::InternalError("Await without a Submit");
    wv1::StepResponse r = std::move(pending_.front());
    pending_.pop_front();
    executor_ns_.fetch_add(CpuNs(CLOCK_THREAD_CPUTIME_ID) - t0, std::memory_order_relaxed);
    return r;
  }

  // Blocks the caller until `steps` plans have been submitted; false after 30 s without.
  [[nodiscard]] bool WaitForSteps(int64_t steps) {
    wake_at_.store(steps);
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return steps_.load() >= steps; });
  }

  int64_t steps() const { return steps_.load(); }
  int64_t executor_ns() const { return executor_ns_.load(std::memory_order_relaxed); }
  // The engine thread's CPU time (valid once a step was submitted).
  int64_t engine_cpu_ns() const { return CpuNs(engine_clock_); }

 private:
  const int32_t vocab_;
  std::deque<wv1::StepResponse> pending_;
  std::atomic<int64_t> steps_{0};
  std::atomic<int64_t> wake_at_{INT64_MAX};
  std::atomic<int64_t> executor_ns_{0};
  std::atomic<bool> engine_clock_set_{false};
  clockid_t engine_clock_{};
  std::mutex mu_;
  std::condition_variable cv_;
};

std::shared_ptr<const tandem::tokenizer::Tokenizer> LoadTokenizer() {
  static auto* tok = [] {
    auto t = tandem::tokenizer::Tokenizer::FromFile(std::string(TANDEM_SOURCE_DIR) +
                                                    "/tests/testdata/tokenizer/tokenizer.json");
    return t.ok() ? new std::shared_ptr<const tandem::tokenizer::Tokenizer>(std::move(*t))
                  : new std::shared_ptr<const tandem::tokenizer::Tokenizer>();
  }();
  return *tok;
}

coord::SchedulerConfig BenchSchedulerConfig(int64_t sequences) {
  coord::SchedulerConfig c;
  c.num_slots = static_cast<int32_t>(sequences);
  c.block_size = 16;
  c.num_blocks = 1 << 20;  // never preempts within a run
  c.max_tokens_per_step = 1 << 14;
  c.max_queued_requests = sequences;
  c.max_queued_prompt_tokens = sequences * kPromptLen;
  return c;
}

enum class Mode { kText, kSkipText, kStopStrings, kTextMetrics };

void BM_EngineDecode(benchmark::State& state, Mode mode) {
  const int64_t n = state.range(0);
  auto tok = LoadTokenizer();
  if (tok == nullptr || tok->vocab_size() <= kFirstOrdinaryToken) {
    state.SkipWithError("cannot load tests/testdata/tokenizer/tokenizer.json");
    return;
  }
  coord::EngineOptions options;
  options.scheduler = BenchSchedulerConfig(n);
  options.limits.vocab_size = tok->vocab_size();
  options.limits.max_context = 1 << 20;
  options.limits.max_new_tokens = kMaxNewTokens;
  options.eos_token_id = 0;
  InstantExecutor executor(tok->vocab_size());
  tandem::metrics::Registry registry;
  coord::CoordinatorMetrics observer(&registry, {.access_log = false});
  if (mode == Mode::kTextMetrics) options.observer = &observer;
  std::atomic<int64_t> tokens{0}, text_bytes{0}, started{0}, finals{0};
  std::vector<char> got_first(static_cast<size_t>(n), 0);  // touched by the engine thread only
  auto engine = std::make_unique<coord::Engine>(options, tok, &executor);
  if (mode == Mode::kTextMetrics) observer.AttachEngine(engine.get());
  for (int64_t i = 0; i < n; ++i) {
    coord::Submission sub;
    for (int32_t k = 0; k < kPromptLen; ++k) {
      sub.request.mutable_tokens()->add_ids(
          TokenFor(1000 + i, k, kFirstOrdinaryToken, tok->vocab_size()));
    }
    sub.request.mutable_stopping()->set_max_new_tokens(kMaxNewTokens);
    sub.request.mutable_stopping()->set_ignore_eos(true);
    if (mode == Mode::kSkipText) sub.request.set_skip_text(true);
    if (mode == Mode::kStopStrings) {
      // Never matched by the generated text: the matcher scans every delta to the end.
      for (const char* s : {"<|never-stop-1|>", "###never###", "STOP_STRING_THAT_NEVER_APPEARS",
                            "</never-stop-4>"}) {
        sub.request.mutable_stopping()->add_stop(s);
      }
    }
    sub.on_output = [&, i](coord::RequestOutput out) {
      tokens.fetch_add(static_cast<int64_t>(out.token_ids.size()), std::memory_order_relaxed);
      text_bytes.fetch_add(static_cast<int64_t>(out.text_delta.size()), std::memory_order_relaxed);
      if (!out.token_ids.empty() && !got_first[static_cast<size_t>(i)]) {
        got_first[static_cast<size_t>(i)] = 1;
        started.fetch_add(1, std::memory_order_relaxed);
      }
      if (out.final) finals.fetch_add(1, std::memory_order_relaxed);
    };
    auto id = engine->Submit(std::move(sub));
    if (!id.ok()) {
      state.SkipWithError(std::string(id.status().message()).c_str());
      return;
    }
  }
  // Every sequence decoding (prefill done, first token out) before the timing starts.
  auto stalled = [&] {
    const coord::LedgerStats l = engine->Ledger();
    const coord::SchedulerStats s = engine->Stats();
    state.SkipWithError(("the engine stopped stepping: " + std::to_string(l.live) + " live, " +
                         std::to_string(l.terminated) + " terminated, " +
                         std::to_string(s.running) + " running, " + std::to_string(s.waiting) +
                         " waiting, " + std::to_string(executor.steps()) + " steps")
                            .c_str());
  };
  while (started.load(std::memory_order_relaxed) < n) {
    if (!executor.WaitForSteps(executor.steps() + 1)) return stalled();
  }
  if (!executor.WaitForSteps(executor.steps() + 4)) return stalled();

  const int64_t steps0 = executor.steps(), tokens0 = tokens.load();
  const int64_t cpu0 = executor.engine_cpu_ns(), exec0 = executor.executor_ns();
  const int64_t bytes0 = text_bytes.load();
  int64_t target = steps0;
  size_t scraped_bytes = 0;
  for (auto _ : state) {
    target += kStepsPerIteration;
    if (mode == Mode::kTextMetrics) scraped_bytes += registry.Render().size();
    if (!executor.WaitForSteps(target)) return stalled();
  }
  benchmark::DoNotOptimize(scraped_bytes);
  const int64_t steps = executor.steps() - steps0;
  const int64_t cpu = executor.engine_cpu_ns() - cpu0;
  const int64_t exec = executor.executor_ns() - exec0;
  const int64_t generated = tokens.load() - tokens0;
  const int64_t bytes = text_bytes.load() - bytes0;
  const int64_t steps_total = executor.steps();
  engine.reset();  // stops the engine thread (each live request ends with one final output)

  const double per_step = 1.0 / static_cast<double>(steps);
  state.counters["sequences"] = static_cast<double>(n);
  state.counters["engine_cpu_us_per_step"] = static_cast<double>(cpu) * 1e-3 * per_step;
  state.counters["executor_cpu_us_per_step"] = static_cast<double>(exec) * 1e-3 * per_step;
  state.counters["engine_cpu_us_per_token"] =
      static_cast<double>(cpu - exec) * 1e-3 / static_cast<double>(std::max<int64_t>(generated, 1));
  state.counters["tokens_per_step"] = static_cast<double>(generated) * per_step;
  state.counters["text_bytes_per_token"] =
      static_cast<double>(bytes) / static_cast<double>(std::max<int64_t>(generated, 1));
  state.counters["steps_per_s"] =
      benchmark::Counter(static_cast<double>(steps), benchmark::Counter::kIsRate);
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(generated), benchmark::Counter::kIsRate);
  state.counters["context_at_end"] =
      static_cast<double>(kPromptLen + steps_total);  // roughly: one token per step
  state.counters["finals"] = static_cast<double>(finals.load());
  state.SetItemsProcessed(steps);
}

void SchedulerStep(benchmark::State& state, bool prefix_cache) {
  const int64_t n = state.range(0);
  coord::SchedulerConfig config = BenchSchedulerConfig(n);
  config.prefix_cache = prefix_cache;
  config.num_snapshots = 1024;
  coord::Scheduler scheduler(config);
  for (int64_t i = 0; i < n; ++i) {
    coord::SequenceSpec spec;
    spec.id = static_cast<uint64_t>(i + 1);
    spec.prompt.assign(kPromptLen, 7);
    spec.max_new_tokens = kMaxNewTokens;
    if (!scheduler.Add(std::move(spec)).ok()) {
      state.SkipWithError("Scheduler::Add failed");
      return;
    }
  }
  int64_t decoding = 0, position = 0;
  auto step = [&] {
    coord::StepPlan plan = scheduler.Schedule();
    for (const coord::PlannedSequence& p : plan.sequences) {
      if (p.sample) {
        // The prompt's last chunk (which may start past a reused prefix).
        if (p.start_pos + static_cast<int64_t>(p.tokens.size()) == kPromptLen) ++decoding;
        scheduler.Complete(p.id, TokenFor(p.id, ++position, kFirstOrdinaryToken, 4096));
      } else {
        scheduler.Complete(p.id, std::nullopt);
      }
    }
    return static_cast<int64_t>(plan.sequences.size());
  };
  while (decoding < n) step();  // prefill: every sequence has its first token
  int64_t planned = 0;
  for (auto _ : state) planned += step();
  state.counters["sequences"] = static_cast<double>(n);
  state.counters["sequences_per_step"] =
      static_cast<double>(planned) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_SchedulerStep(benchmark::State& state) { SchedulerStep(state, false); }
// The same with the prefix cache on: the identical prompts share their blocks, every sequence
// after the first few reuses a snapshot, and each Complete() checks for blocks to insert.
void BM_SchedulerStepPrefixCache(benchmark::State& state) { SchedulerStep(state, true); }

BENCHMARK_CAPTURE(BM_EngineDecode, text, Mode::kText)
    ->Arg(32)
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EngineDecode, metrics, Mode::kTextMetrics)
    ->Arg(32)
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EngineDecode, skip_text, Mode::kSkipText)
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EngineDecode, stop_strings, Mode::kStopStrings)
    ->Arg(256)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SchedulerStep)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SchedulerStepPrefixCache)->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  tandem::bench::AddMachineContext();
  benchmark::AddCustomContext("steps_per_iteration", std::to_string(kStepsPerIteration));
  benchmark::AddCustomContext("prompt_len", std::to_string(kPromptLen));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
