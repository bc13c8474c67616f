#include "coordinator/service.h"

#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace tandem::coordinator {

namespace v1 = ::tandem::v1;

::grpc::Status ToGrpc(const absl::Status& status) {
  return ::grpc::Status(static_cast<::grpc::StatusCode>(status.code()),
                        std::string(status.message()));
}

namespace {

absl::Time DeadlineOf(::grpc::CallbackServerContext* context) {
  const auto d = context->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

class StreamReactor : public ::grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
 public:
  StreamReactor(Engine* engine, ::grpc::CallbackServerContext* context,
                const v1::GenerateRequest& request)
      : engine_(engine) {
    Submission sub;
    sub.request = request;
    sub.deadline = DeadlineOf(context);
    sub.is_cancelled = [context] { return context->IsCancelled(); };
    sub.on_output = [this](RequestOutput out) { OnOutput(std::move(out)); };
    absl::StatusOr<std::string> id = engine_->Submit(std::move(sub));
    if (!id.ok()) {
      Finish(ToGrpc(id.status()));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    id_ = *id;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) broken_ = true;
    Pump();
  }
  void OnCancel() override { engine_->Cancel(id_copy()); }
  void OnDone() override { delete this; }

 private:
  std::string id_copy() {
    std::lock_guard<std::mutex> lock(mu_);
    return id_;
  }

  void OnOutput(RequestOutput out) {
    std::lock_guard<std::mutex> lock(mu_);
    if (out.final && !out.status.ok()) {
      final_status_ = ToGrpc(out.status);
      done_ = true;
      Pump();
      return;
    }
    v1::GenerateStreamResponse msg;
    msg.set_request_id(id_);
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
    Pump();
  }

  // Under mu_.
  void Pump() {
    if (writing_ || finished_) return;
    if (broken_) {
      finished_ = true;
      Finish(::grpc::Status(::grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    if (done_) {
      finished_ = true;
      Finish(final_status_);
    }
  }

  Engine* engine_;
  std::mutex mu_;
  std::string id_;
  std::deque<v1::GenerateStreamResponse> queue_;
  v1::GenerateStreamResponse current_;
  bool writing_ = false;
  bool done_ = false;
  bool finished_ = false;
  bool broken_ = false;
  ::grpc::Status final_status_;
};

}  // namespace

TandemService::TandemService(Engine* engine, ModelDescription model,
                             int64_t max_receive_message_bytes)
    : engine_(engine),
      model_(std::move(model)),
      max_receive_message_bytes_(max_receive_message_bytes) {}

::grpc::ServerUnaryReactor* TandemService::Generate(::grpc::CallbackServerContext* context,
                                                    const v1::GenerateRequest* request,
                                                    v1::GenerateResponse* response) {
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Submission sub;
  sub.request = *request;
  sub.deadline = DeadlineOf(context);
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
  absl::StatusOr<std::string> id = engine_->Submit(std::move(sub));
  if (!id.ok()) {
    reactor->Finish(ToGrpc(id.status()));
  } else {
    response->set_request_id(*id);
  }
  return reactor;
}

::grpc::ServerWriteReactor<v1::GenerateStreamResponse>* TandemService::GenerateStream(
    ::grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new StreamReactor(engine_, context, *request);
}

::grpc::ServerUnaryReactor* TandemService::Abort(::grpc::CallbackServerContext* context,
                                                 const v1::AbortRequest* request,
                                                 v1::AbortResponse* response) {
  for (const std::string& id : request->request_ids()) {
    if (engine_->Cancel(id)) {
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
  if (!IsValidUtf8(request->text())) {
    reactor->Finish(
        ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT, "text: is not valid UTF-8"));
    return reactor;
  }
  auto ids = engine_->tokenizer().Encode(request->text(), request->add_special_tokens());
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
  const int64_t vocab = engine_->options().limits.vocab_size;
  for (int i = 0; i < request->token_ids_size(); ++i) {
    if (request->token_ids(i) < 0 || request->token_ids(i) >= vocab) {
      reactor->Finish(::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                     absl::StrCat("token_ids[", i, "]: ", request->token_ids(i),
                                                  " is outside the vocabulary [0, ", vocab, ")")));
      return reactor;
    }
  }
  std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  response->set_text(engine_->tokenizer().Decode(ids, request->skip_special_tokens()));
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

::grpc::ServerUnaryReactor* TandemService::GetModelInfo(::grpc::CallbackServerContext* context,
                                                        const v1::GetModelInfoRequest*,
                                                        v1::GetModelInfoResponse* response) {
  const EngineOptions& o = engine_->options();
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
  const SchedulerStats st = engine_->Stats();
  v1::Capacities* c = response->mutable_capacities();
  c->set_num_slots(o.scheduler.num_slots);
  c->set_num_blocks(o.scheduler.num_blocks);
  c->set_block_size(o.scheduler.block_size);
  c->set_free_slots(st.free_slots);
  c->set_free_blocks(st.free_blocks);
  c->set_queued_requests(st.waiting);
  c->set_running_requests(st.running);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

absl::StatusOr<std::unique_ptr<Server>> StartServer(Engine* engine, const ModelDescription& model,
                                                    const std::string& address,
                                                    int64_t max_receive_message_bytes) {
  auto out = std::make_unique<Server>();
  out->service = std::make_unique<TandemService>(engine, model, max_receive_message_bytes);
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  ::grpc::ServerBuilder builder;
  builder.AddListeningPort(address, ::grpc::InsecureServerCredentials(), &out->port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_receive_message_bytes));
  builder.RegisterService(out->service.get());
  out->server = builder.BuildAndStart();
  if (!out->server || out->port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  ::grpc::HealthCheckServiceInterface* health = out->server->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(engine->healthy());
    health->SetServingStatus("tandem.v1.Tandem", engine->healthy());
    engine->SetOnBroken([health] {
      health->SetServingStatus(false);
      health->SetServingStatus("tandem.v1.Tandem", false);
    });
  }
  return out;
}

}  // namespace tandem::coordinator
