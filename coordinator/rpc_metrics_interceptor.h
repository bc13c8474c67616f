// A gRPC server interceptor that counts every RPC by method and final status code into
// tandem_rpc_requests_total{method="tandem.v1.Tandem/Generate",code="OK"} (requests refused before
// the engine saw them included). The registry must outlive the server. Thread-safe.
#pragma once

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "metrics/registry.h"

namespace tandem::coordinator {

std::unique_ptr<::grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(metrics::Registry* registry);

}  // namespace tandem::coordinator
