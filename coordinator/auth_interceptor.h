// The API-key gate for services that are not ours (server reflection): a gRPC server interceptor.
//
// Our own tandem.v1 handlers check the key themselves, first thing (they need the caller's
// identity anyway). Reflection is gRPC's code, and a gRPC 1.51 server interceptor cannot end a
// call before its handler runs; so for a call without a valid key to any method outside
// grpc.health.v1, this interceptor (1) clears every request message of a reflection call before
// the handler sees it (the handler answers an empty request with an empty error and learns and
// reveals nothing) and (2) rewrites the call's final status to UNAUTHENTICATED. For our own
// methods (2) is a second line behind the handler's own check. Health stays open.
#pragma once

#include <memory>

#include "coordinator/api_keys.h"
#include "grpcpp/support/server_interceptor.h"

namespace tandem::coordinator {

// `keys` must outlive the server; with keys disabled the factory admits everything.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeApiKeyInterceptorFactory(
    const ApiKeys* keys);

}  // namespace tandem::coordinator
