// Requests of the public API parsed from their wire bytes, so that invalid UTF-8 in a string field
// is INVALID_ARGUMENT naming the field ("stopping.stop[2]: is not valid UTF-8").
//
// protobuf refuses a proto3 `string` field holding invalid UTF-8 while parsing, and gRPC then ends
// the call with UNIMPLEMENTED and an empty message, before any handler runs. The methods whose
// requests hold strings are therefore registered with a ByteBuffer request (the response stays
// typed): CheckStringFields walks the bytes guided by the message's descriptor (every string field
// at any depth, repeated ones by index, so a field added to tandem.proto is covered without a
// change here), then the bytes are parsed into the public message, which cannot fail on UTF-8 any
// more. The public .proto is unchanged; clients see the same contract.
//
// The typed handlers wrapped here get a request that lives only until they return: they must copy
// what they keep. All functions are thread-safe.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"

namespace tandem::coordinator {

// INVALID_ARGUMENT naming the first string field (path from the request root, e.g. "text",
// "stopping.stop[2]", "request_ids[0]") whose bytes are not well-formed UTF-8, or "request: ..."
// when `wire` is not a well-formed encoding of `type`. Fields `type` does not know are skipped.
[[nodiscard]] absl::Status CheckStringFields(absl::string_view wire,
                                             const google::protobuf::Descriptor& type);

// CheckStringFields, then parses `buffer` into `out`.
[[nodiscard]] absl::Status ParseRequest(const ::grpc::ByteBuffer& buffer,
                                        google::protobuf::Message* out);

// The index of `method` in tandem.v1.Tandem (the generated service registers methods in that
// order).
int TandemMethodIndex(absl::string_view method);

// Called with a request that could not be parsed, before the call is refused with `status`.
using UnparsedHook =
    std::function<void(::grpc::CallbackServerContext* context, const absl::Status& status)>;

// A unary callback taking the request as bytes and calling `method` with it parsed.
template <class Request, class Response, class Service>
auto UnaryFromWire(Service* service,
                   ::grpc::ServerUnaryReactor* (Service::*method)(::grpc::CallbackServerContext*,
                                                                  const Request*, Response*),
                   UnparsedHook on_unparsed = nullptr) {
  return [service, method, on_unparsed](::grpc::CallbackServerContext* context,
                                        const ::grpc::ByteBuffer* wire,
                                        Response* response) -> ::grpc::ServerUnaryReactor* {
    Request request;
    const absl::Status parsed = ParseRequest(*wire, &request);
    if (!parsed.ok()) {
      if (on_unparsed) on_unparsed(context, parsed);
      ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      reactor->Finish(::grpc::Status(static_cast<::grpc::StatusCode>(parsed.code()),
                                     std::string(parsed.message())));
      return reactor;
    }
    return (service->*method)(context, &request, response);
  };
}

// A server-streaming callback taking the request as bytes.
template <class Request, class Response, class Service>
auto StreamFromWire(Service* service,
                    ::grpc::ServerWriteReactor<Response>* (Service::*method)(
                        ::grpc::CallbackServerContext*, const Request*),
                    UnparsedHook on_unparsed = nullptr) {
  // Ends a call whose request could not be parsed.
  class Refused : public ::grpc::ServerWriteReactor<Response> {
   public:
    explicit Refused(const absl::Status& status) {
      this->Finish(::grpc::Status(static_cast<::grpc::StatusCode>(status.code()),
                                  std::string(status.message())));
    }
    void OnDone() override { delete this; }
  };
  return [service, method, on_unparsed](
             ::grpc::CallbackServerContext* context,
             const ::grpc::ByteBuffer* wire) -> ::grpc::ServerWriteReactor<Response>* {
    Request request;
    const absl::Status parsed = ParseRequest(*wire, &request);
    if (!parsed.ok()) {
      if (on_unparsed) on_unparsed(context, parsed);
      return new Refused(parsed);
    }
    return (service->*method)(context, &request);
  };
}

}  // namespace tandem::coordinator
