#include "coordinator/auth_interceptor.h"

#include <string>

#include "absl/strings/match.h"
#include "google/protobuf/message.h"

namespace tandem::coordinator {
namespace {

class ApiKeyInterceptor final : public grpc::experimental::Interceptor {
 public:
  ApiKeyInterceptor(const ApiKeys* keys, grpc::experimental::ServerRpcInfo* info)
      : keys_(keys),
        method_(info->method() == nullptr ? "" : info->method()),
        reflection_(absl::StartsWith(method_, "/grpc.reflection.")) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      if (!absl::StartsWith(method_, "/grpc.health.v1.")) {
        absl::string_view authorization;
        auto* md = methods->GetRecvInitialMetadata();
        if (md != nullptr) {
          auto it = md->find("authorization");
          if (it != md->end()) authorization = {it->second.data(), it->second.size()};
        }
        denied_ = !keys_->Authenticate(authorization).ok();
      }
    }
    if (denied_ && reflection_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      // Reflection's messages are full protobuf messages (grpc++_reflection is built with the
      // full runtime), so the handler gets an empty request.
      if (void* m = methods->GetRecvMessage(); m != nullptr) {
        static_cast<google::protobuf::Message*>(m)->Clear();
      }
    }
    if (denied_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      methods->ModifySendStatus(grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          "this server requires an API key: send the metadata 'authorization: Bearer <key>'"));
    }
    methods->Proceed();
  }

 private:
  const ApiKeys* keys_;
  const std::string method_;
  const bool reflection_;
  bool denied_ = false;
};

class ApiKeyInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ApiKeyInterceptorFactory(const ApiKeys* keys) : keys_(keys) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (!keys_->enabled()) return nullptr;
    return new ApiKeyInterceptor(keys_, info);
  }

 private:
  const ApiKeys* keys_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeApiKeyInterceptorFactory(
    const ApiKeys* keys) {
  return std::make_unique<ApiKeyInterceptorFactory>(keys);
}

}  // namespace tandem::coordinator
