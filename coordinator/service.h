// TandemService: the tandem.v1.Tandem gRPC service (callback API) over an Engine, and
// StartServer, which builds the server with grpc.health.v1 (NOT_SERVING once the engine breaks),
// server reflection and a deliberate maximum receive message size.
//
// The first load (docs/serving.md, "Loading"): StartLoadingServer listens before there is an
// engine (the workers are still loading). Until Server::AttachEngine, health is NOT_SERVING,
// GetModelInfo answers replica.state = STATE_LOADING with the progress of a LoadingState,
// Generate/GenerateStream/Detokenize are refused UNAVAILABLE naming the load, Abort finds no
// request, and Tokenize works (the tokenizer is loaded first). AttachEngine switches the same
// server to the engine (health SERVING when it is ready).
//
// Security (docs/serving.md, "Security"): with API keys (coordinator/api_keys.h) every method
// but health requires `authorization: Bearer <key>`; our handlers check it first thing, and
// auth_interceptor.h guards reflection. Abort acts only on the caller's own requests; priority > 0
// needs a key with allow_priority. With TLS files the listener speaks only TLS (mTLS with a
// client CA).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "auth/tls_files.h"
#include "coordinator/api_keys.h"
#include "coordinator/engine.h"
#include "coordinator/loading_state.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace tandem::metrics {
class Registry;
}

namespace tandem::coordinator {

struct ModelDescription {
  std::string model;
  int32_t tp = 1;
  int32_t pp = 1;
  std::string backend = "cpu";
  int64_t vocab_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t snapshot_entry_bytes = 0;  // the largest over the workers
};

// What the service answers with before an engine is attached (the first load).
struct LoadingService {
  const LoadingState* state = nullptr;  // required; must outlive the service
  // Tokenize answers with it while loading (null: UNAVAILABLE).
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  // The access log of the generations refused while loading (may be null; not owned).
  EngineObserver* observer = nullptr;
  ModelDescription model;  // model, tp and pp are reported while loading
};

// Generate, GenerateStream, Abort and Tokenize are registered with their request as bytes and
// parsed by wire_request.h (invalid UTF-8 -> INVALID_ARGUMENT naming the field); the typed
// handlers below then get a request that lives only until they return, so they copy what they keep.
class TandemService final : public ::tandem::v1::Tandem::CallbackService {
 public:
  // `keys` (may be null: no keys) must outlive the service.
  TandemService(Engine* engine, ModelDescription model, int64_t max_receive_message_bytes,
                const ApiKeys* keys = nullptr);
  // Loading until AttachEngine.
  TandemService(LoadingService loading, int64_t max_receive_message_bytes,
                const ApiKeys* keys = nullptr);

  // The first load is over: from now on every call goes to `engine` (which must outlive the
  // service). Call once, on a service built loading.
  void AttachEngine(Engine* engine, ModelDescription model);
  // Null while loading.
  Engine* engine() const { return engine_.load(std::memory_order_acquire); }

  ::grpc::ServerUnaryReactor* Generate(::grpc::CallbackServerContext* context,
                                       const ::tandem::v1::GenerateRequest* request,
                                       ::tandem::v1::GenerateResponse* response) override;
  ::grpc::ServerWriteReactor<::tandem::v1::GenerateStreamResponse>* GenerateStream(
      ::grpc::CallbackServerContext* context,
      const ::tandem::v1::GenerateRequest* request) override;
  ::grpc::ServerUnaryReactor* Abort(::grpc::CallbackServerContext* context,
                                    const ::tandem::v1::AbortRequest* request,
                                    ::tandem::v1::AbortResponse* response) override;
  ::grpc::ServerUnaryReactor* Tokenize(::grpc::CallbackServerContext* context,
                                       const ::tandem::v1::TokenizeRequest* request,
                                       ::tandem::v1::TokenizeResponse* response) override;
  ::grpc::ServerUnaryReactor* Detokenize(::grpc::CallbackServerContext* context,
                                         const ::tandem::v1::DetokenizeRequest* request,
                                         ::tandem::v1::DetokenizeResponse* response) override;
  ::grpc::ServerUnaryReactor* GetModelInfo(::grpc::CallbackServerContext* context,
                                           const ::tandem::v1::GetModelInfoRequest* request,
                                           ::tandem::v1::GetModelInfoResponse* response) override;

 private:
  // The authenticated caller, or UNAUTHENTICATED (checked before anything else).
  absl::StatusOr<Caller> CallerOf(::grpc::CallbackServerContext* context) const;
  // UNAVAILABLE naming the load's progress (while there is no engine).
  absl::Status NotLoaded() const;
  EngineObserver* observer() const;
  void RegisterWireMethods();

  // Set once (AttachEngine), after model_; model_ is read only once engine_ is set.
  std::atomic<Engine*> engine_{nullptr};
  const ApiKeys* keys_;
  LoadingService loading_;
  ModelDescription model_;
  int64_t max_receive_message_bytes_;
};

::grpc::Status ToGrpc(const absl::Status& status);

struct Server {
  std::unique_ptr<TandemService> service;
  std::unique_ptr<::grpc::Server> server;
  int port = 0;

  // Of a server started loading (StartLoadingServer): the service switches to `engine` and
  // health follows it from now on (SERVING when ready, NOT_SERVING while it recovers).
  void AttachEngine(Engine* engine, ModelDescription model);
};

struct ServerSecurity {
  const ApiKeys* api_keys = nullptr;  // null or disabled: no keys; must outlive the server
  auth::TlsFiles tls;                 // cert + key: TLS; ca: clients need a certificate (mTLS)
};

// Listens on `address` ("host:port"; port 0 picks one). Health turns NOT_SERVING when the
// engine breaks. With `metrics`, every RPC is counted there by method and final status code.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Server>> StartServer(
    Engine* engine, const ModelDescription& model, const std::string& address,
    int64_t max_receive_message_bytes, const ServerSecurity& security = {},
    metrics::Registry* metrics = nullptr);

// Listens on `address` before there is an engine: health NOT_SERVING and the service loading
// (see the file comment) until Server::AttachEngine.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Server>> StartLoadingServer(
    LoadingService loading, const std::string& address, int64_t max_receive_message_bytes,
    const ServerSecurity& security = {}, metrics::Registry* metrics = nullptr);

}  // namespace tandem::coordinator
