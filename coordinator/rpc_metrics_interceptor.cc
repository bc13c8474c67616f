#include "coordinator/rpc_metrics_interceptor.h"

#include <string>

#include "absl/status/status.h"

namespace tandem::coordinator {
namespace {

namespace gx = ::grpc::experimental;

class RpcMetricsInterceptor final : public gx::Interceptor {
 public:
  RpcMetricsInterceptor(gx::ServerRpcInfo* info, metrics::Registry* registry)
      : registry_(registry) {
    const char* m = info->method();
    method_ = (m != nullptr && m[0] == '/') ? m + 1 : (m != nullptr ? m : "");
  }

  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const ::grpc::Status status = methods->GetSendStatus();
      registry_
          ->Counter("tandem_rpc_requests_total",
                    "RPCs answered by the coordinator, by method and final status code.",
                    {{"method", method_},
                     {"code", absl::StatusCodeToString(
                                  static_cast<absl::StatusCode>(status.error_code()))}})
          ->Increment();
    }
    methods->Proceed();
  }

 private:
  metrics::Registry* registry_;
  std::string method_;
};

class Factory final : public gx::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(metrics::Registry* registry) : registry_(registry) {}
  gx::Interceptor* CreateServerInterceptor(gx::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(info, registry_);
  }

 private:
  metrics::Registry* registry_;
};

}  // namespace

std::unique_ptr<gx::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptorFactory(
    metrics::Registry* registry) {
  return std::make_unique<Factory>(registry);
}

}  // namespace tandem::coordinator
