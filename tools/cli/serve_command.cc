// tandem serve: the coordinator (public tandem.v1 gRPC API) over tp * pp worker processes on
// this machine. With no arguments: the built-in default model (a small trained Nemotron-H embedded
// in the executable, written on first use under $XDG_CACHE_HOME/tandem/; default_model.h), tp=2,
// pp=2.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "auth/group_identity.h"
#include "coordinator/api_keys.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/engine.h"
#include "coordinator/service.h"
#include "core/status.h"
#include "grpcpp/health_check_service_interface.h"
#include "metrics/http_exporter.h"
#include "replica/replica_supervisor.h"
#include "tokenizer/tokenizer.h"
#include "tools/cli/command.h"
#include "tools/cli/default_model.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/observability_flags.h"
#include "worker/local_cluster.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "serve";

// SIGINT/SIGTERM while the first load runs (minutes for a large checkpoint) end the process at
// once with 128 + the signal: nothing runs yet, so there is nothing to drain; local workers die
// with it (PR_SET_PDEATHSIG, --parent-pid), remote ones are released when their lease lapses. The
// load stays on the main thread (a worker forked from a thread that exits would get its
// PR_SET_PDEATHSIG). The kernel offers a process-directed signal to the main thread first, then
// to any thread that does not block it, such as OpenBLAS's workers, which start before main()
// with nothing blocked: so a handler takes it wherever it lands, and this object's thread waits
// for it in case every thread blocks it. SIGHUP stays pending for the main loop. On destruction
// the default disposition is back and the main loop's sigwait takes the signals (drain).
class FirstLoadSignals {
 public:
  FirstLoadSignals() {
    struct sigaction action {};
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
    thread_ = std::thread([this] {
      sigset_t stop;
      sigemptyset(&stop);
      sigaddset(&stop, SIGINT);
      sigaddset(&stop, SIGTERM);
      const timespec tick{0, 20 * 1000 * 1000};
      while (!done_.load()) {
        const int sig = sigtimedwait(&stop, nullptr, &tick);
        if (sig > 0) OnSignal(sig);
      }
    });
  }
  ~FirstLoadSignals() {
    done_.store(true);
    thread_.join();
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  static void OnSignal(int sig) {  // async-signal-safe: write and _exit only
    constexpr char kMessage[] = "tandem serve: a signal during the first load: exiting\n";
    (void)!write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    _exit(128 + sig);
  }
  struct sigaction old_int_ {
  }, old_term_{};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

absl::Status Run(const Args& args) {
  // clang-format off
  RETURN_IF_ERROR(args.CheckKnown(
      {"model", "tp", "pp", "port", "host", "slots", "blocks", "block-size", "max-tokens-per-step",
       "max-queued-requests", "max-queued-prompt-tokens", "max-new-tokens", "max-receive-bytes",
       "collective", "micro-batches", "workers", "rendezvous-host", "start-timeout",
       "drain-timeout",
       // Prefix caching (docs/serving.md, "Prefix caching").
       "prefix-cache", "snapshot-pool-bytes",
       // Failures and recovery (docs/serving.md, "Failures and recovery").
       "max-replays", "step-timeout-floor-ms", "recovery-queue-timeout", "liveness-timeout-ms",
       // Security (docs/serving.md, "Security").
       "tls-cert", "tls-key", "tls-client-ca", "api-keys-file", "group-secret-file",
       "worker-tls-cert", "worker-tls-key", "worker-tls-ca", "lease-ttl-ms",
       // Observability (docs/observability.md).
       "metrics-port", "worker-metrics-port-base", "log-format", "log-prompts"}));
  // clang-format on
  RETURN_IF_ERROR(CheckServeFlags(args));
  ASSIGN_OR_RETURN(ObservabilityFlags obs, ApplyObservabilityFlags(args, "coordinator"));
  // Block the shutdown signals before any thread starts; sigwait below takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // reloads --api-keys-file
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  worker::LocalClusterOptions copts;
  if (auto m = args.Get("model")) {
    copts.model_dir = *m;
  } else {
    ASSIGN_OR_RETURN(copts.model_dir, DefaultModelDir());
  }
  ASSIGN_OR_RETURN(int64_t tp, args.GetInt("tp", 2));
  ASSIGN_OR_RETURN(int64_t pp, args.GetInt("pp", 2));
  ASSIGN_OR_RETURN(int64_t port, args.GetInt("port", 50051));
  ASSIGN_OR_RETURN(copts.num_slots, args.GetInt("slots", 64));
  ASSIGN_OR_RETURN(copts.num_blocks, args.GetInt("blocks", 1024));
  ASSIGN_OR_RETURN(copts.block_size, args.GetInt("block-size", 16));
  ASSIGN_OR_RETURN(int64_t max_step_tokens, args.GetInt("max-tokens-per-step", 256));
  ASSIGN_OR_RETURN(int64_t max_queued, args.GetInt("max-queued-requests", 1024));
  ASSIGN_OR_RETURN(int64_t max_queued_tokens, args.GetInt("max-queued-prompt-tokens", 1 << 20));
  ASSIGN_OR_RETURN(int64_t max_new, args.GetInt("max-new-tokens", 4096));
  ASSIGN_OR_RETURN(int64_t max_receive, args.GetInt("max-receive-bytes", 4 << 20));
  const std::string prefix_cache = args.GetOr("prefix-cache", "on");
  if (prefix_cache != "on" && prefix_cache != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefix-cache: '", prefix_cache, "' is not on or off"));
  }
  ASSIGN_OR_RETURN(const int64_t snapshot_pool_bytes,
                   args.GetInt("snapshot-pool-bytes", int64_t{1} << 30));
  if (snapshot_pool_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--snapshot-pool-bytes ", snapshot_pool_bytes, " is negative"));
  }
  if (prefix_cache == "on" && snapshot_pool_bytes > 0) {
    // A snapshot sits on a cached KV block, so more entries than blocks are never used; each
    // worker grants what its budget holds (an entry is its slice of one slot's SSM + conv state).
    copts.snapshot_pool_bytes = snapshot_pool_bytes;
    copts.num_snapshots = copts.num_blocks;
  }
  if (tp < 1 || pp < 1) return absl::InvalidArgumentError("--tp and --pp must be >= 1");
  // Plans in flight at once: one per pipeline stage keeps every stage busy.
  ASSIGN_OR_RETURN(int64_t micro_batches, args.GetInt("micro-batches", pp));
  if (micro_batches < 1 || micro_batches > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--micro-batches ", micro_batches, " is outside [1, 64]"));
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--port ", port, " is outside [0, 65535]"));
  }
  copts.tp = static_cast<int>(tp);
  copts.pp = static_cast<int>(pp);
  copts.collective = args.GetOr("collective", "gloo");
  ASSIGN_OR_RETURN(int64_t start_timeout, args.GetInt("start-timeout", 60));
  if (start_timeout < 1)
    return absl::InvalidArgumentError("--start-timeout must be >= 1 (seconds)");
  copts.start_timeout = absl::Seconds(start_timeout);
  ASSIGN_OR_RETURN(const int64_t drain_timeout, args.GetInt("drain-timeout", 30));
  ASSIGN_OR_RETURN(const int64_t max_replays, args.GetInt("max-replays", 3));
  if (max_replays < 0 || max_replays > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-replays ", max_replays, " is outside [0, 1000]"));
  }
  ASSIGN_OR_RETURN(const int64_t step_floor_ms, args.GetInt("step-timeout-floor-ms", 10000));
  if (step_floor_ms < 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--step-timeout-floor-ms ", step_floor_ms, " is below the minimum of 100"));
  }
  ASSIGN_OR_RETURN(const int64_t recovery_queue_timeout, args.GetInt("recovery-queue-timeout", 60));
  if (recovery_queue_timeout < 1) {
    return absl::InvalidArgumentError("--recovery-queue-timeout must be >= 1 (seconds)");
  }
  ASSIGN_OR_RETURN(const int64_t liveness_ms, args.GetInt("liveness-timeout-ms", 1200));
  if (liveness_ms < 200 || liveness_ms > 600000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--liveness-timeout-ms ", liveness_ms, " is outside [200, 600000]"));
  }
  copts.liveness_timeout = absl::Milliseconds(liveness_ms);
  // Workers on other hosts: `tandem worker --listen 0.0.0.0:PORT` on each, joined by address in
  // rank order. They reach this process's rendezvous store at --rendezvous-host.
  if (auto w = args.Get("workers")) {
    for (absl::string_view a : absl::StrSplit(*w, ',', absl::SkipEmpty())) {
      copts.worker_addresses.emplace_back(a);
    }
    if (static_cast<int64_t>(copts.worker_addresses.size()) != tp * pp) {
      return absl::InvalidArgumentError(absl::StrCat("--workers: ", copts.worker_addresses.size(),
                                                     " addresses for tp=", tp, " x pp=", pp, " = ",
                                                     tp * pp, " ranks"));
    }
    const std::string host = args.GetOr("host", "127.0.0.1");
    copts.rendezvous_bind = host;
    copts.rendezvous_host = args.GetOr("rendezvous-host", host);
    if (copts.rendezvous_host == "0.0.0.0" || copts.rendezvous_host == "::") {
      return absl::InvalidArgumentError(
          "--rendezvous-host: the workers need an address of this machine they can reach (--host "
          "is a wildcard)");
    }
  } else if (args.Has("rendezvous-host")) {
    return absl::InvalidArgumentError("--rendezvous-host applies only with --workers");
  }

  // Security flags (docs/serving.md, "Security").
  ASSIGN_OR_RETURN(copts.group_secret, auth::LoadGroupSecret(args.GetOr("group-secret-file", "")));
  ASSIGN_OR_RETURN(int64_t lease_ttl_ms, args.GetInt("lease-ttl-ms", 5000));
  if (lease_ttl_ms < 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lease-ttl-ms ", lease_ttl_ms, " is below the minimum of 100"));
  }
  copts.lease_ttl = absl::Milliseconds(lease_ttl_ms);
  copts.worker_tls.flag_prefix = "--worker-tls-";
  copts.worker_tls.cert = args.GetOr("worker-tls-cert", "");
  copts.worker_tls.key = args.GetOr("worker-tls-key", "");
  copts.worker_tls.ca = args.GetOr("worker-tls-ca", "");
  if (copts.worker_tls.any() && copts.worker_addresses.empty()) {
    return absl::InvalidArgumentError(
        "--worker-tls-*: apply only with --workers (local workers talk over loopback)");
  }
  coordinator::ServerSecurity security;
  security.tls.cert = args.GetOr("tls-cert", "");
  security.tls.key = args.GetOr("tls-key", "");
  security.tls.ca = args.GetOr("tls-client-ca", "");
  if (!security.tls.ca.empty() && (security.tls.cert.empty() || security.tls.key.empty())) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<coordinator::ApiKeys> api_keys,
                   coordinator::ApiKeys::FromFile(args.GetOr("api-keys-file", "")));
  security.api_keys = api_keys.get();

  // Metrics serve from here on, so the loading state shows while the workers load.
  metrics::Registry registry;
  coordinator::CoordinatorMetrics cmetrics(&registry, {.log_prompts = obs.log_prompts});
  coordinator::LoadingState loading(copts.tp * copts.pp);  // outlives the metrics server
  cmetrics.AttachLoading(&loading);
  // GET /ready beside /metrics: 200 while the API is SERVING (loaded, ready, not draining), for an
  // HTTP probe where the gRPC port speaks only TLS (docs/deploy.md, "Probes").
  std::atomic<const coordinator::Engine*> serving_engine{nullptr};
  std::unique_ptr<metrics::MetricsHttpServer> metrics_server;
  if (obs.metrics_port >= 0) {
    ASSIGN_OR_RETURN(metrics_server, metrics::MetricsHttpServer::Start(
                                         args.GetOr("host", "127.0.0.1"), obs.metrics_port,
                                         &registry, [&serving_engine] {
                                           const coordinator::Engine* e = serving_engine.load();
                                           return e != nullptr && e->healthy() && e->accepting();
                                         }));
    std::printf("tandem serve: metrics on http://%s:%d/metrics\n",
                args.GetOr("host", "127.0.0.1").c_str(), metrics_server->port());
    std::fflush(stdout);
  }
  copts.worker_metrics_port_base = obs.worker_metrics_port_base;
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok,
                   tokenizer::Tokenizer::FromFile(copts.model_dir + "/tokenizer.json"));
  std::shared_ptr<const tokenizer::Tokenizer> shared_tok(std::move(tok));

  // The API answers from here on, while the workers load (docs/serving.md, "Loading"): health
  // NOT_SERVING, GetModelInfo STATE_LOADING with the ranks loaded so far, generations UNAVAILABLE.
  const std::string host = args.GetOr("host", "127.0.0.1");
  const std::string address = absl::StrCat(host, ":", port);
  coordinator::LoadingService loading_service;
  loading_service.state = &loading;
  loading_service.tokenizer = shared_tok;
  loading_service.observer = &cmetrics;
  loading_service.model.model = copts.model_dir;
  loading_service.model.tp = copts.tp;
  loading_service.model.pp = copts.pp;
  ASSIGN_OR_RETURN(auto server, coordinator::StartLoadingServer(std::move(loading_service), address,
                                                                max_receive, security, &registry));
  // Not "listening on" (that line still means loaded and SERVING, for scripts that wait for it).
  std::printf(
      "tandem serve: loading: the API answers on %s:%d (health NOT_SERVING until every rank "
      "has loaded)\n",
      host.c_str(), server->port);
  std::fflush(stdout);
  copts.on_loading = [&loading] { loading.WorkersUp(); };
  copts.on_rank_loaded = [&loading](int, const ::tandem::worker::v1::InfoResponse& info) {
    loading.RankLoaded(info.checkpoint_bytes_read());
  };
  replica::ReplicaSupervisorOptions ropts;
  ropts.cluster = copts;
  ropts.max_in_flight = static_cast<int>(micro_batches);
  auto load_signals = std::make_unique<FirstLoadSignals>();
  ASSIGN_OR_RETURN(std::unique_ptr<replica::ReplicaSupervisor> supervisor,
                   replica::ReplicaSupervisor::Start(std::move(ropts)));
  load_signals.reset();  // from here on the main loop's sigwait takes them (drain)

  // Capacities: the smallest over all ranks (blocks over the ranks that hold attention).
  coordinator::EngineOptions eopts;
  int64_t slots = INT64_MAX, blocks = INT64_MAX, block_size = 0, step_tokens = INT64_MAX;
  int64_t snapshots = INT64_MAX, snapshot_entry_bytes = 0;
  const auto& caps = supervisor->infos().front().capabilities();
  for (const auto& info : supervisor->infos()) {
    slots = std::min(slots, info.capacity().num_slots());
    snapshots = std::min(snapshots, info.capacity().num_snapshots());
    snapshot_entry_bytes = std::max(snapshot_entry_bytes, info.snapshot_entry_bytes());
    if (info.capacity().num_blocks() > 0) blocks = std::min(blocks, info.capacity().num_blocks());
    block_size = std::max(block_size, info.capacity().block_size());
    if (info.capacity().max_tokens_per_step() > 0) {
      step_tokens = std::min(step_tokens, info.capacity().max_tokens_per_step());
    }
  }
  if (blocks == INT64_MAX) blocks = copts.num_blocks;
  eopts.scheduler.num_slots = static_cast<int32_t>(slots);
  eopts.scheduler.num_blocks = static_cast<int32_t>(blocks);
  eopts.scheduler.block_size = static_cast<int32_t>(std::max<int64_t>(block_size, 1));
  eopts.scheduler.max_tokens_per_step = std::min(max_step_tokens, step_tokens);
  eopts.scheduler.max_queued_requests = max_queued;
  eopts.scheduler.micro_batches = static_cast<int32_t>(micro_batches);
  eopts.scheduler.max_queued_prompt_tokens = max_queued_tokens;
  eopts.scheduler.prefix_cache = copts.num_snapshots > 0;
  eopts.scheduler.num_snapshots =
      static_cast<int32_t>(std::min<int64_t>(copts.num_snapshots > 0 ? snapshots : 0, INT32_MAX));
  if (eopts.scheduler.prefix_cache && eopts.scheduler.num_snapshots == 0) {
    std::fprintf(stderr,
                 "tandem serve: warning: prefix caching is off: --snapshot-pool-bytes %lld holds "
                 "no snapshot of %lld bytes on some worker\n",
                 static_cast<long long>(snapshot_pool_bytes),
                 static_cast<long long>(snapshot_entry_bytes));
  }
  eopts.limits.vocab_size = caps.vocab_size();
  eopts.limits.max_context = std::min<int64_t>(
      caps.max_position_embeddings() > 0 ? caps.max_position_embeddings() : INT64_MAX,
      blocks * eopts.scheduler.block_size);
  eopts.limits.max_new_tokens = static_cast<int32_t>(max_new);
  eopts.limits.max_top_logprobs = caps.max_top_logprobs() > 0 ? caps.max_top_logprobs() : 20;
  eopts.limits.max_prompt_text_bytes = max_receive;
  eopts.eos_token_id = caps.eos_token_id();
  RETURN_IF_ERROR(CheckServeCapacity(eopts));
  eopts.observer = &cmetrics;
  eopts.max_replays = static_cast<int32_t>(max_replays);
  eopts.step_timeout_floor = absl::Milliseconds(step_floor_ms);
  eopts.recovery_queue_timeout = absl::Seconds(recovery_queue_timeout);

  auto engine = std::make_unique<coordinator::Engine>(eopts, shared_tok, supervisor.get());
  coordinator::ModelDescription desc;
  desc.model = copts.model_dir;
  desc.tp = copts.tp;
  desc.pp = copts.pp;
  desc.backend = caps.backend();
  desc.vocab_size = caps.vocab_size();
  desc.num_hidden_layers = caps.num_hidden_layers();
  desc.snapshot_entry_bytes = snapshot_entry_bytes;
  // The same server now serves the engine (health SERVING).
  server->AttachEngine(engine.get(), desc);
  serving_engine.store(engine.get());
  // A worker that dies or freezes turns the engine RECOVERING (health NOT_SERVING) with no step
  // sent; the supervisor rebuilds the group and resumes it.
  supervisor->Attach(engine.get());
  cmetrics.AttachEngine(engine.get());
  cmetrics.SetReplicaState(coordinator::ReplicaState::kReady);
  std::printf(
      "tandem serve: listening on %s:%d (model %s, tp=%d pp=%d, %lld slots, %lld blocks "
      "of %lld, prefix cache %s with %d snapshots)\n",
      host.c_str(), server->port, copts.model_dir.c_str(), copts.tp, copts.pp,
      static_cast<long long>(slots), static_cast<long long>(blocks),
      static_cast<long long>(eopts.scheduler.block_size),
      eopts.scheduler.num_snapshots > 0 ? "on" : "off", eopts.scheduler.num_snapshots);
  std::fflush(stdout);
  if (host != "127.0.0.1" && host != "localhost" && host != "::1" && !api_keys->enabled()) {
    std::fprintf(stderr,
                 "tandem serve: warning: the API on %s has no API keys: anyone who can reach the "
                 "port can use it (--api-keys-file; docs/serving.md, \"Security\")\n",
                 host.c_str());
  }

  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    absl::StatusOr<size_t> n = api_keys->Reload();
    if (n.ok()) {
      std::fprintf(stderr, "tandem serve: SIGHUP: %zu API keys loaded\n", *n);
    } else {
      std::fprintf(stderr, "tandem serve: SIGHUP: keeping the previous API keys: %s\n",
                   std::string(n.status().message()).c_str());
    }
  }
  // Graceful drain: NOT_SERVING at once, new requests refused ("server shutting down"), requests
  // in flight run to completion within --drain-timeout, the rest end UNAVAILABLE.
  std::fprintf(stderr, "tandem serve: signal %d, draining (up to %lld s)\n", sig,
               static_cast<long long>(drain_timeout));
  if (::grpc::HealthCheckServiceInterface* health = server->server->GetHealthCheckService()) {
    health->SetServingStatus(false);
    health->SetServingStatus("tandem.v1.Tandem", false);
  }
  engine->StopAccepting();
  const auto wait_idle = [&engine](absl::Time until) {
    while (engine->Ledger().live > 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
    return engine->Ledger().live;
  };
  if (const int64_t left = wait_idle(absl::Now() + absl::Seconds(drain_timeout)); left > 0) {
    std::fprintf(stderr, "tandem serve: %lld requests still running after %lld s, ending them\n",
                 static_cast<long long>(left), static_cast<long long>(drain_timeout));
    engine->EndAll(absl::UnavailableError(absl::StrCat(
        "server shutting down: the request was still running after the drain timeout of ",
        drain_timeout, " s")));
    (void)wait_idle(absl::Now() + absl::Seconds(10));  // after the step in flight
  }
  std::fprintf(stderr, "tandem serve: shutting down\n");
  // The streams have ended; their last messages go out before the server stops.
  server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  supervisor->Stop();      // no rebuild and no failure report once the engine goes
  metrics_server.reset();  // its collectors read the engine
  engine.reset();
  server.reset();
  supervisor.reset();
  return absl::OkStatus();
}

// clang-format off
const char kUsage[] =
    "[options]\n\n"
    "Without --model: the built-in default model, a small trained Nemotron-H (tp=2, pp=2 by\n"
    "default). Without --workers, tp * pp worker processes start on this machine; with it, the\n"
    "coordinator joins `tandem worker --listen` processes already running elsewhere (rank order;\n"
    "they must see the same --model path).\n\n"
    "  --model DIR           model directory: config.json, tokenizer.json, *.safetensors (default: the built-in model)\n"
    "  --tp N                tensor-parallel ranks per stage (default 2)\n"
    "  --pp M                pipeline stages (default 2)\n"
    "  --host H              address the gRPC server (and /metrics) binds (default 127.0.0.1)\n"
    "  --port P              gRPC port; 0 picks a free one, printed (default 50051)\n"
    "  --slots N             SSM state slots per worker: concurrent sequences (default 64)\n"
    "  --blocks N            KV cache blocks per attention worker (default 1024)\n"
    "  --block-size N        tokens per KV block (default 16)\n"
    "  --max-tokens-per-step N  token budget of one step (default 256)\n"
    "  --max-queued-requests N  requests waiting before RESOURCE_EXHAUSTED (default 1024)\n"
    "  --max-queued-prompt-tokens N  prompt tokens waiting before RESOURCE_EXHAUSTED (default 1048576)\n"
    "  --max-new-tokens N    largest max_new_tokens a request may ask for (default 4096)\n"
    "  --max-receive-bytes N largest request message in bytes (default 4194304)\n"
    "  --micro-batches N     step plans in flight at once (default pp)\n"
    "  --collective C        TP collective: gloo or ucx (default gloo)\n"
    "  --workers A,B,...     host:port of running `tandem worker`s in rank order (default: start local ones)\n"
    "  --rendezvous-host H   address of this machine the --workers reach (default --host)\n"
    "  --start-timeout S     seconds for the workers to start and load, and to wait for a previous\n"
    "                        coordinator's lease on them to lapse (default 60)\n"
    "  --drain-timeout S     on SIGTERM/SIGINT: seconds requests in flight may run on before they\n"
    "                        end UNAVAILABLE (default 30; docs/serving.md, \"Failures and recovery\")\n"
    "\nPrefix caching (docs/serving.md, \"Prefix caching\"): a prompt that starts like an earlier one\n"
    "reuses its KV blocks and a snapshot of the SSM + conv state at a block boundary; exact.\n"
    "  --prefix-cache on|off reuse cached prefixes (default on)\n"
    "  --snapshot-pool-bytes N  bytes of state snapshots per worker (default 1073741824; an entry is\n"
    "                        the worker's slice of one sequence's SSM + conv state; at most --blocks entries)\n"
    "\nFailures and recovery (docs/serving.md, \"Failures and recovery\"): a worker that dies or freezes\n"
    "is detected by heartbeat, the group is rebuilt (same addresses, new epoch) and the requests that\n"
    "were running are replayed from their prompt and streamed tokens.\n"
    "  --liveness-timeout-ms N  a worker silent this long is declared dead (default 1200)\n"
    "  --step-timeout-floor-ms N  least time a step may take before the group is declared failed; each\n"
    "                        step gets this plus 10x its expected time from measured steps (default 10000)\n"
    "  --max-replays N       times a request may be replayed after failures before it ends UNAVAILABLE\n"
    "                        (default 3; 0: running requests end UNAVAILABLE when the group fails)\n"
    "  --recovery-queue-timeout S  seconds a request may wait for the group to come back before it ends\n"
    "                        UNAVAILABLE (default 60)\n"
    "\nSecurity (docs/serving.md, \"Security\"):\n"
    "  --tls-cert PEM, --tls-key PEM  serve the API over TLS (default: plaintext)\n"
    "  --tls-client-ca PEM   with TLS: require client certificates signed by this CA (default off)\n"
    "  --api-keys-file F     require an API key on every call but health; reloaded on SIGHUP (default: no keys)\n"
    "  --group-secret-file F the secret shared with the workers (default $TANDEM_GROUP_SECRET; generated\n"
    "                        for local workers; required with --workers)\n"
    "  --lease-ttl-ms N      lease TTL of the local workers (default 5000)\n"
    "  --worker-tls-cert PEM, --worker-tls-key PEM, --worker-tls-ca PEM\n"
    "                        with --workers: mTLS to the workers (default: plaintext)\n";
// clang-format on

TANDEM_COMMAND(kName, "serve the tandem.v1 gRPC API (coordinator + local worker processes)",
               std::string(kUsage) + kObservabilityUsage, {kLogPromptsFlag}, [](const Args& args) {
                 absl::Status s = Run(args);
                 return s.ok() ? 0 : Fail(kName, s);
               });

}  // namespace
}  // namespace tandem::cli
