#include "coordinator/service.h"

#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "coordinator/auth_interceptor.h"
#include "coordinator/rpc_metrics_interceptor.h"
#include "coordinator/trace_context.h"
#include "coordinator/wire_request.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace tandem::coordinator {

namespace v1 = ::tandem::v1;

::grpc::Status ToGrpc(const absl::Status& status) {
  return ::grpc::Status(static_cast<::grpc::StatusCode>(status.code()),
                        std::string(status.message()));
}

namespace {

constexpr size_t kMaxLoggedRequestIdBytes = 256;

// The access-log line of a generation refused before the engine admitted it (`request` null when
// it could not be parsed).
void ReportRefused(EngineObserver* observer, const char* method_name,
                   const v1::GenerateRequest* request, const std::string& trace_id,
                   const absl::Status& status) {
  if (observer == nullptr) return;
  const std::string method = method_name;
  // A refused request's id was not validated (and its caller maybe not authenticated): at most
  // the 256 bytes a valid one may have, cut at a UTF-8 character boundary.
  std::string request_id = request != nullptr ? request->request_id() : std::string();
  if (request_id.size() > kMaxLoggedRequestIdBytes) {
    size_t end = kMaxLoggedRequestIdBytes;
    while (end > 0 && (static_cast<unsigned char>(request_id[end]) & 0xC0) == 0x80) --end;
    request_id.resize(end);
  }
  observer->OnRefused({method, request_id, trace_id, request, status});
}

constexpr char kGenerateMethod[] = "Generate";
constexpr char kStreamMethod[] = "GenerateStream";

absl::Time DeadlineOf(::grpc::CallbackServerContext* context) {
  const auto d = context->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

// A streamed request. Two parties hold it: gRPC (until OnDone) and the engine (until it delivers
// the final output). Either may finish first: a failed write finishes the RPC while the engine
// still runs the request, and the engine's final output may arrive while a write is in flight. The
// reactor deletes itself when both have let go, so neither ever touches freed memory. StartWrite
// and Finish are called outside the lock (gRPC may run reactions inline) and are the last thing a
// method does, since OnDone may delete the reactor on another thread right after Finish.
class StreamReactor : public ::grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
 public:
  // `admission` not OK: the call is refused with it (authentication, priority, loading) and
  // nothing runs (`engine` may then be null). `trace_id` is the call's (AcceptTraceContext,
  // already called).
  StreamReactor(Engine* engine, EngineObserver* observer, ::grpc::CallbackServerContext* context,
                const v1::GenerateRequest& request, absl::Status admission, std::string owner,
                std::string trace_id)
      : engine_(engine), owner_(std::move(owner)) {
    if (!admission.ok()) {
      ReportRefused(observer, kStreamMethod, &request, trace_id, admission);
      {
        std::lock_guard<std::mutex> lock(mu_);
        engine_done_ = true;
        finished_ = true;
      }
      Finish(ToGrpc(admission));
      return;
    }
    Submission sub;
    sub.owner = owner_;
    sub.request = request;
    sub.deadline = DeadlineOf(context);
    sub.trace_id = trace_id;
    // The engine polls this until its final output; it must not touch `context` once gRPC is
    // done with the call.
    sub.is_cancelled = [this, context] {
      std::lock_guard<std::mutex> lock(mu_);
      return cancelled_ || (!grpc_done_ && context->IsCancelled());
    };
    sub.on_output = [this](RequestOutput out) { OnOutput(std::move(out)); };
    absl::StatusOr<std::string> id = engine_->Submit(std::move(sub));
    if (!id.ok()) {
      ReportRefused(observer, kStreamMethod, &request, trace_id, id.status());
      {
        std::lock_guard<std::mutex> lock(mu_);
        engine_done_ = true;  // the engine never calls back for a refused request
        finished_ = true;
      }
      Finish(ToGrpc(id.status()));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (id_.empty()) id_ = *id;
  }

  void OnWriteDone(bool ok) override {
    Action action;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) write_failed_ = true;
      action = Pump();
    }
    Run(action);
  }
  void OnCancel() override {
    std::string id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      if (engine_done_ || id_.empty()) return;  // not yet known: is_cancelled reports it
      id = id_;
    }
    engine_->Cancel(owner_, id);
  }
  void OnDone() override {
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      grpc_done_ = true;
      last = engine_done_;
    }
    if (last) delete this;
  }

 private:
  struct Action {
    bool write = false;
    bool finish = false;
    ::grpc::Status status;
  };

  void Run(const Action& action) {
    if (action.write) StartWrite(&current_);
    if (action.finish) Finish(action.status);
  }

  void OnOutput(RequestOutput out) {
    bool last = false;
    Action action;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (id_.empty()) id_ = out.request_id;
      if (out.final) {
        engine_done_ = true;
        last = grpc_done_;
      }
      if (!finished_) action = Accept(std::move(out));
    }
    if (last) {
      delete this;
      return;
    }
    Run(action);
  }

  // Under mu_.
  Action Accept(RequestOutput out) {
    if (out.final && !out.status.ok()) {
      final_status_ = ToGrpc(out.status);
      done_ = true;
      return Pump();
    }
    v1::GenerateStreamResponse msg;
    msg.set_request_id(out.request_id);
    msg.set_text_delta(out.text_delta);
    msg.mutable_token_ids()->Add(out.token_ids.begin(), out.token_ids.end());
    for (auto& lp : out.logprobs) *msg.add_logprobs() = std::move(lp);
    if (out.final) {
      msg.set_finish_reason(out.finish_reason);
      *msg.mutable_usage() = out.usage;
      msg.set_matched_stop(out.matched_stop);
      done_ = true;
    }
    queue_.push_back(std::move(msg));
    return Pump();
  }

  // Under mu_: decides the next write or the finish; the caller runs it after unlocking.
  Action Pump() {
    Action action;
    if (writing_ || finished_) return action;
    if (write_failed_) {
      finished_ = true;
      cancelled_ = true;  // the engine frees the request's state at its next step
      action.finish = true;
      action.status = ::grpc::Status(::grpc::StatusCode::CANCELLED, "the client went away");
      return action;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      action.write = true;
      return action;
    }
    if (done_) {
      finished_ = true;
      action.finish = true;
      action.status = final_status_;
    }
    return action;
  }

  Engine* engine_;
  const std::string owner_;
  std::mutex mu_;
  std::string id_;
  std::deque<v1::GenerateStreamResponse> queue_;
  v1::GenerateStreamResponse current_;
  bool writing_ = false;
  bool done_ = false;          // the engine's final output is queued
  bool finished_ = false;      // Finish was called (or is about to be)
  bool write_failed_ = false;  // a write failed: the client is gone
  bool cancelled_ = false;
  bool grpc_done_ = false;    // OnDone ran
  bool engine_done_ = false;  // the engine delivered its final output (or never took the request)
  ::grpc::Status final_status_;
};

}  // namespace

TandemService::TandemService(Engine* engine, ModelDescription model,
                             int64_t max_receive_message_bytes, const ApiKeys* keys)
    : engine_(engine),
      keys_(keys),
      model_(std::move(model)),
      max_receive_message_bytes_(max_receive_message_bytes) {
  RegisterWireMethods();
}

TandemService::TandemService(LoadingService loading, int64_t max_receive_message_bytes,
                             const ApiKeys* keys)
    : keys_(keys),
      loading_(std::move(loading)),
      max_receive_message_bytes_(max_receive_message_bytes) {
  RegisterWireMethods();
}

void TandemService::AttachEngine(Engine* engine, ModelDescription model) {
  model_ = std::move(model);
  engine_.store(engine, std::memory_order_release);
}

absl::Status TandemService::NotLoaded() const {
  const LoadingStatus st =
      loading_.state != nullptr ? loading_.state->Get() : LoadingStatus{.since = absl::Now()};
  return absl::UnavailableError(
      absl::StrCat("the server is not serving yet: ", st.Reason(), " for ",
                   static_cast<int64_t>(absl::ToDoubleSeconds(absl::Now() - st.since)),
                   " s; health turns SERVING once every rank has loaded"));
}

EngineObserver* TandemService::observer() const {
  const Engine* engine = this->engine();
  return engine != nullptr ? engine->options().observer : loading_.observer;
}

void TandemService::RegisterWireMethods() {
  // Requests with string fields arrive as bytes, so that invalid UTF-8 is INVALID_ARGUMENT naming
  // the field rather than protobuf's empty UNIMPLEMENTED (wire_request.h).
  using ::grpc::internal::CallbackServerStreamingHandler;
  using ::grpc::internal::CallbackUnaryHandler;
  // A generation that cannot be parsed is refused like any other: with its trace context
  // returned and an access-log line.
  const auto refused = [this](const char* method) {
    return [this, method](::grpc::CallbackServerContext* context, const absl::Status& status) {
      ReportRefused(observer(), method, nullptr, AcceptTraceContext(context), status);
    };
  };
  MarkMethodCallback(TandemMethodIndex("Generate"),
                     new CallbackUnaryHandler<::grpc::ByteBuffer, v1::GenerateResponse>(
                         UnaryFromWire(this, &TandemService::Generate, refused(kGenerateMethod))));
  MarkMethodCallback(
      TandemMethodIndex("GenerateStream"),
      new CallbackServerStreamingHandler<::grpc::ByteBuffer, v1::GenerateStreamResponse>(
          StreamFromWire(this, &TandemService::GenerateStream, refused(kStreamMethod))));
  MarkMethodCallback(TandemMethodIndex("Abort"),
                     new CallbackUnaryHandler<::grpc::ByteBuffer, v1::AbortResponse>(
                         UnaryFromWire(this, &TandemService::Abort)));
  MarkMethodCallback(TandemMethodIndex("Tokenize"),
                     new CallbackUnaryHandler<::grpc::ByteBuffer, v1::TokenizeResponse>(
                         UnaryFromWire(this, &TandemService::Tokenize)));
}

absl::StatusOr<Caller> TandemService::CallerOf(::grpc::CallbackServerContext* context) const {
  if (keys_ == nullptr) return Caller{};
  return keys_->Authenticate(*context);
}

::grpc::ServerUnaryReactor* TandemService::Generate(::grpc::CallbackServerContext* context,
                                                    const v1::GenerateRequest* request,
                                                    v1::GenerateResponse* response) {
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string trace_id = AcceptTraceContext(context);
  absl::StatusOr<Caller> caller = CallerOf(context);
  absl::Status admitted =
      caller.ok() ? CheckPriority(*caller, request->priority()) : caller.status();
  Engine* engine = this->engine();
  if (admitted.ok() && engine == nullptr) admitted = NotLoaded();
  if (!admitted.ok()) {
    ReportRefused(observer(), kGenerateMethod, request, trace_id, admitted);
    reactor->Finish(ToGrpc(admitted));
    return reactor;
  }
  Submission sub;
  sub.owner = caller->owner;
  sub.request = *request;
  sub.deadline = DeadlineOf(context);
  sub.trace_id = trace_id;
  sub.is_cancelled = [context] { return context->IsCancelled(); };
  const bool want_ids = request->return_token_ids();
  sub.on_output = [reactor, response, want_ids](RequestOutput out) {
    response->mutable_text()->append(out.text_delta);
    if (want_ids) response->mutable_token_ids()->Add(out.token_ids.begin(), out.token_ids.end());
    for (auto& lp : out.logprobs) *response->add_logprobs() = std::move(lp);
    if (out.final) {
      response->set_finish_reason(out.finish_reason);
      *response->mutable_usage() = out.usage;
      response->set_matched_stop(out.matched_stop);
      reactor->Finish(ToGrpc(out.status));
    }
  };
  absl::StatusOr<std::string> id = engine->Submit(std::move(sub));
  if (!id.ok()) {
    ReportRefused(observer(), kGenerateMethod, request, trace_id, id.status());
    reactor->Finish(ToGrpc(id.status()));
  } else {
    response->set_request_id(*id);
  }
  return reactor;
}

::grpc::ServerWriteReactor<v1::GenerateStreamResponse>* TandemService::GenerateStream(
    ::grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  absl::StatusOr<Caller> caller = CallerOf(context);
  absl::Status admitted =
      caller.ok() ? CheckPriority(*caller, request->priority()) : caller.status();
  Engine* engine = this->engine();
  if (admitted.ok() && engine == nullptr) admitted = NotLoaded();
  return new StreamReactor(engine, observer(), context, *request, admitted,
                           caller.ok() ? caller->owner : std::string(),
                           AcceptTraceContext(context));
}

::grpc::ServerUnaryReactor* TandemService::Abort(::grpc::CallbackServerContext* context,
                                                 const v1::AbortRequest* request,
                                                 v1::AbortResponse* response) {
  absl::StatusOr<Caller> caller = CallerOf(context);
  if (!caller.ok()) {
    auto* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpc(caller.status()));
    return reactor;
  }
  // Only the caller's own requests: another key's id is not found, exactly like an unknown one
  // (while loading there is none).
  Engine* engine = this->engine();
  for (const std::string& id : request->request_ids()) {
    if (engine != nullptr && engine->Cancel(caller->owner, id)) {
      response->add_aborted(id);
    } else {
      response->add_not_found(id);
    }
  }
  auto* reactor = context->DefaultReactor();
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

::grpc::ServerUnaryReactor* TandemService::Tokenize(::grpc::CallbackServerContext* context,
                                                    const v1::TokenizeRequest* request,
                                                    v1::TokenizeResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::StatusOr<Caller> caller = CallerOf(context); !caller.ok()) {
    reactor->Finish(ToGrpc(caller.status()));
    return reactor;
  }
  if (!IsValidUtf8(request->text())) {
    reactor->Finish(
        ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT, "text: is not valid UTF-8"));
    return reactor;
  }
  const Engine* engine = this->engine();
  const tokenizer::Tokenizer* tok =
      engine != nullptr ? &engine->tokenizer() : loading_.tokenizer.get();
  if (tok == nullptr) {
    reactor->Finish(ToGrpc(NotLoaded()));
    return reactor;
  }
  auto ids = tok->Encode(request->text(), request->add_special_tokens());
  if (!ids.ok()) {
    reactor->Finish(::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                   absl::StrCat("text: ", ids.status().message())));
    return reactor;
  }
  response->mutable_token_ids()->Add(ids->begin(), ids->end());
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

::grpc::ServerUnaryReactor* TandemService::Detokenize(::grpc::CallbackServerContext* context,
                                                      const v1::DetokenizeRequest* request,
                                                      v1::DetokenizeResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::StatusOr<Caller> caller = CallerOf(context); !caller.ok()) {
    reactor->Finish(ToGrpc(caller.status()));
    return reactor;
  }
  const Engine* engine = this->engine();
  if (engine == nullptr) {  // the model's vocabulary size is known once it has loaded
    reactor->Finish(ToGrpc(NotLoaded()));
    return reactor;
  }
  const int64_t vocab = engine->options().limits.vocab_size;
  for (int i = 0; i < request->token_ids_size(); ++i) {
    if (request->token_ids(i) < 0 || request->token_ids(i) >= vocab) {
      reactor->Finish(::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                     absl::StrCat("token_ids[", i, "]: ", request->token_ids(i),
                                                  " is outside the vocabulary [0, ", vocab, ")")));
      return reactor;
    }
  }
  std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  response->set_text(engine->tokenizer().Decode(ids, request->skip_special_tokens()));
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

::grpc::ServerUnaryReactor* TandemService::GetModelInfo(::grpc::CallbackServerContext* context,
                                                        const v1::GetModelInfoRequest*,
                                                        v1::GetModelInfoResponse* response) {
  if (absl::StatusOr<Caller> caller = CallerOf(context); !caller.ok()) {
    auto* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpc(caller.status()));
    return reactor;
  }
  const Engine* engine = this->engine();
  if (engine == nullptr) {
    const LoadingStatus st =
        loading_.state != nullptr ? loading_.state->Get() : LoadingStatus{.since = absl::Now()};
    response->set_model(loading_.model.model);
    response->set_tp(loading_.model.tp);
    response->set_pp(loading_.model.pp);
    v1::ReplicaInfo* ri = response->mutable_replica();
    ri->set_state(v1::ReplicaInfo::STATE_LOADING);
    ri->set_reason(st.Reason());
    ri->set_state_seconds(absl::ToDoubleSeconds(absl::Now() - st.since));
    ri->set_ranks_loaded(st.ranks_loaded);
    ri->set_ranks_total(st.ranks_total);
    ri->set_bytes_loaded(st.bytes_loaded);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(::grpc::Status::OK);
    return reactor;
  }
  const EngineOptions& o = engine->options();
  response->set_model(model_.model);
  response->set_vocab_size(o.limits.vocab_size);
  response->set_eos_token_id(o.eos_token_id);
  response->set_tp(model_.tp);
  response->set_pp(model_.pp);
  response->set_backend(model_.backend);
  response->set_num_hidden_layers(model_.num_hidden_layers);
  v1::Limits* l = response->mutable_limits();
  l->set_max_context(o.limits.max_context);
  l->set_max_new_tokens(o.limits.max_new_tokens);
  l->set_max_stop_strings(o.limits.max_stop_strings);
  l->set_max_stop_string_bytes(o.limits.max_stop_string_bytes);
  l->set_max_top_logprobs(o.limits.max_top_logprobs);
  l->set_max_queued_requests(o.scheduler.max_queued_requests);
  l->set_max_queued_prompt_tokens(o.scheduler.max_queued_prompt_tokens);
  l->set_max_receive_message_bytes(max_receive_message_bytes_);
  l->set_max_tokens_per_step(o.scheduler.max_tokens_per_step);
  const SchedulerStats st = engine->Stats();
  v1::Capacities* c = response->mutable_capacities();
  c->set_num_slots(o.scheduler.num_slots);
  c->set_num_blocks(o.scheduler.num_blocks);
  c->set_block_size(o.scheduler.block_size);
  c->set_free_slots(st.free_slots);
  c->set_free_blocks(st.free_blocks);
  c->set_queued_requests(st.waiting);
  c->set_running_requests(st.running);
  const LedgerStats ledger = engine->Ledger();
  v1::Ledger* lg = response->mutable_ledger();
  lg->set_accepted(ledger.accepted);
  lg->set_terminated(ledger.terminated);
  lg->set_live(ledger.live);
  lg->set_preemptions(ledger.preemptions);
  lg->set_steps(ledger.steps);
  lg->set_failures(ledger.failures);
  lg->set_recoveries(ledger.recoveries);
  lg->set_replays(ledger.replays);
  const ReplicaStatus replica = engine->Replica();
  v1::ReplicaInfo* ri = response->mutable_replica();
  ri->set_state(replica.ready ? v1::ReplicaInfo::STATE_READY : v1::ReplicaInfo::STATE_RECOVERING);
  ri->set_reason(replica.reason);
  ri->set_state_seconds(absl::ToDoubleSeconds(absl::Now() - replica.since));
  ri->set_last_failure(replica.last_failure);
  v1::PrefixCacheInfo* pc = response->mutable_prefix_cache();
  const PrefixCacheStats& cs = st.prefix_cache;
  pc->set_enabled(o.scheduler.prefix_cache && o.scheduler.num_snapshots > 0);
  pc->set_num_snapshots(cs.num_snapshots);
  pc->set_used_snapshots(cs.used_snapshots);
  pc->set_cached_blocks(cs.cached_blocks);
  pc->set_lookups(cs.lookups);
  pc->set_hits(cs.hits);
  pc->set_lookup_tokens(cs.lookup_tokens);
  pc->set_cached_tokens(cs.cached_tokens);
  pc->set_evicted_blocks(cs.evicted_blocks);
  pc->set_evicted_snapshots(cs.evicted_snapshots);
  pc->set_snapshots_saved(cs.snapshots_saved);
  pc->set_snapshot_entry_bytes(model_.snapshot_entry_bytes);
  for (const auto& [code, n] : ledger.by_code) {
    (*lg->mutable_terminated_by_code())[absl::StatusCodeToString(code)] = n;
  }
  auto* reactor = context->DefaultReactor();
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

namespace {

// Builds and starts the server around `out->service`; health NOT_SERVING until AttachEngine.
absl::Status BuildServer(Server* out, const std::string& address, int64_t max_receive_message_bytes,
                         const ServerSecurity& security, metrics::Registry* metrics) {
  std::shared_ptr<::grpc::ServerCredentials> credentials = ::grpc::InsecureServerCredentials();
  if (security.tls.any()) {
    absl::StatusOr<std::shared_ptr<::grpc::ServerCredentials>> tls =
        auth::TlsServerCredentials(security.tls);
    if (!tls.ok()) return tls.status();
    credentials = *tls;
  }
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  ::grpc::ServerBuilder builder;
  // One list (a second SetInterceptorCreators would replace the first). The key gate comes first,
  // so the metrics interceptor counts the status it settles on (UNAUTHENTICATED for reflection).
  std::vector<std::unique_ptr<::grpc::experimental::ServerInterceptorFactoryInterface>> icpt;
  if (security.api_keys != nullptr && security.api_keys->enabled()) {
    icpt.push_back(MakeApiKeyInterceptorFactory(security.api_keys));
  }
  if (metrics != nullptr) icpt.push_back(MakeRpcMetricsInterceptorFactory(metrics));
  if (!icpt.empty()) builder.experimental().SetInterceptorCreators(std::move(icpt));
  builder.AddListeningPort(address, credentials, &out->port);
  // A port in use is an error, not a second server sharing it (gRPC sets SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_receive_message_bytes));
  builder.RegisterService(out->service.get());
  out->server = builder.BuildAndStart();
  if (!out->server || out->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (in use, or not an address of this host)"));
  }
  if (::grpc::HealthCheckServiceInterface* health = out->server->GetHealthCheckService()) {
    health->SetServingStatus(false);
    health->SetServingStatus("tandem.v1.Tandem", false);
  }
  return absl::OkStatus();
}

// Health follows `engine` from now on.
void FollowEngine(::grpc::Server* server, Engine* engine) {
  ::grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(engine->healthy());
  health->SetServingStatus("tandem.v1.Tandem", engine->healthy());
  // NOT_SERVING while the group recovers, SERVING again once it is back (a drain sets
  // NOT_SERVING for good before it stops accepting).
  engine->AddStateListener([health, engine](bool ready, const std::string&) {
    if (ready && !engine->accepting()) return;
    health->SetServingStatus(ready);
    health->SetServingStatus("tandem.v1.Tandem", ready);
  });
}

}  // namespace

void Server::AttachEngine(Engine* engine, ModelDescription model) {
  service->AttachEngine(engine, std::move(model));
  FollowEngine(server.get(), engine);
}

absl::StatusOr<std::unique_ptr<Server>> StartServer(Engine* engine, const ModelDescription& model,
                                                    const std::string& address,
                                                    int64_t max_receive_message_bytes,
                                                    const ServerSecurity& security,
                                                    metrics::Registry* metrics) {
  auto out = std::make_unique<Server>();
  out->service =
      std::make_unique<TandemService>(engine, model, max_receive_message_bytes, security.api_keys);
  if (absl::Status s =
          BuildServer(out.get(), address, max_receive_message_bytes, security, metrics);
      !s.ok()) {
    return s;
  }
  FollowEngine(out->server.get(), engine);
  return out;
}

absl::StatusOr<std::unique_ptr<Server>> StartLoadingServer(LoadingService loading,
                                                           const std::string& address,
                                                           int64_t max_receive_message_bytes,
                                                           const ServerSecurity& security,
                                                           metrics::Registry* metrics) {
  if (loading.state == nullptr) {
    return absl::InvalidArgumentError("StartLoadingServer: no LoadingState");
  }
  auto out = std::make_unique<Server>();
  out->service = std::make_unique<TandemService>(std::move(loading), max_receive_message_bytes,
                                                 security.api_keys);
  if (absl::Status s =
          BuildServer(out.get(), address, max_receive_message_bytes, security, metrics);
      !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace tandem::coordinator
