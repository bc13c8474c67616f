// TandemService: the tandem.v1.Tandem gRPC service (callback API) over an Engine, and
// StartServer, which builds the server with grpc.health.v1 (NOT_SERVING once the engine breaks),
// server reflection and a deliberate maximum receive message size.
//
// Security (docs/serving.md, "Security"): with API keys (coordinator/api_keys.h) every method
// but health requires `authorization: Bearer <key>`; our handlers check it first thing, and
// auth_interceptor.h guards reflection. Abort acts only on the caller's own requests; priority > 0
// needs a key with allow_priority. With TLS files the listener speaks only TLS (mTLS with a
// client CA).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "auth/tls_files.h"
#include "coordinator/api_keys.h"
#include "coordinator/engine.h"
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

// Generate, GenerateStream, Abort and Tokenize are registered with their request as bytes and
// parsed by wire_request.h (invalid UTF-8 -> INVALID_ARGUMENT naming the field); the typed
// handlers below then get a request that lives only until they return, so they copy what they keep.
class TandemService final : public ::tandem::v1::Tandem::CallbackService {
 public:
  // `keys` (may be null: no keys) must outlive the service.
  TandemService(Engine* engine, ModelDescription model, int64_t max_receive_message_bytes,
                const ApiKeys* keys = nullptr);

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

  Engine* engine_;
  const ApiKeys* keys_;
  ModelDescription model_;
  int64_t max_receive_message_bytes_;
};

::grpc::Status ToGrpc(const absl::Status& status);

struct Server {
  std::unique_ptr<TandemService> service;
  std::unique_ptr<::grpc::Server> server;
  int port = 0;
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

}  // namespace tandem::coordinator
