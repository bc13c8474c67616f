// Client mode of `tandem generate` (see generate_client.h); registers no command of its own.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "auth/tls_files.h"
#include "core/status.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tools/cli/generate_client.h"

namespace tandem::cli {

namespace v1 = ::tandem::v1;

namespace {

const char* ReasonName(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_EOS:
      return "eos";
    case v1::FINISH_REASON_STOP_STRING:
      return "stop";
    case v1::FINISH_REASON_STOP_TOKEN:
      return "stop_token";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    case v1::FINISH_REASON_DEADLINE:
      return "deadline";
    default:
      return "unspecified";
  }
}

absl::Status FromGrpc(const ::grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

absl::Status RunGenerateClient(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"server",
                                   "stream",
                                   "tokens",
                                   "max-new-tokens",
                                   "min-new-tokens",
                                   "temperature",
                                   "top-k",
                                   "top-p",
                                   "min-p",
                                   "seed",
                                   "ignore-eos",
                                   "stop",
                                   "priority",
                                   "request-id",
                                   "timeout-ms",
                                   "repetition-penalty",
                                   "presence-penalty",
                                   "frequency-penalty",
                                   "logprobs",
                                   "ids",
                                   "api-key",
                                   "tls",
                                   "tls-ca",
                                   "tls-cert",
                                   "tls-key"}));
  v1::GenerateRequest req;
  if (!args.positional().empty()) {
    req.set_text(absl::StrJoin(args.positional(), " "));
  } else if (auto t = args.Get("tokens")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> ids, ParseIdList(*t, "--tokens"));
    for (int64_t id : ids) req.mutable_tokens()->add_ids(static_cast<int32_t>(id));
  } else {
    return absl::InvalidArgumentError("give the prompt as text (or --tokens 1,2,3)");
  }
  ASSIGN_OR_RETURN(int64_t max_new, args.GetInt("max-new-tokens", 16));
  ASSIGN_OR_RETURN(int64_t min_new, args.GetInt("min-new-tokens", 0));
  req.mutable_stopping()->set_max_new_tokens(static_cast<int32_t>(max_new));
  req.mutable_stopping()->set_min_new_tokens(static_cast<int32_t>(min_new));
  req.mutable_stopping()->set_ignore_eos(args.Has("ignore-eos"));
  if (auto s = args.Get("stop")) req.mutable_stopping()->add_stop(*s);
  auto* sp = req.mutable_sampling();
  if (args.Has("temperature")) {
    ASSIGN_OR_RETURN(double t, args.GetDouble("temperature", 0));
    sp->set_temperature(static_cast<float>(t));
  }
  ASSIGN_OR_RETURN(int64_t top_k, args.GetInt("top-k", 0));
  sp->set_top_k(static_cast<int32_t>(top_k));
  if (args.Has("top-p")) {
    ASSIGN_OR_RETURN(double p, args.GetDouble("top-p", 1));
    sp->set_top_p(static_cast<float>(p));
  }
  ASSIGN_OR_RETURN(double min_p, args.GetDouble("min-p", 0));
  sp->set_min_p(static_cast<float>(min_p));
  if (args.Has("repetition-penalty")) {
    ASSIGN_OR_RETURN(double r, args.GetDouble("repetition-penalty", 1));
    sp->set_repetition_penalty(static_cast<float>(r));
  }
  ASSIGN_OR_RETURN(double pres, args.GetDouble("presence-penalty", 0));
  ASSIGN_OR_RETURN(double freq, args.GetDouble("frequency-penalty", 0));
  sp->set_presence_penalty(static_cast<float>(pres));
  sp->set_frequency_penalty(static_cast<float>(freq));
  if (args.Has("seed")) {
    ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 0));
    sp->set_seed(static_cast<uint64_t>(seed));
  }
  ASSIGN_OR_RETURN(int64_t priority, args.GetInt("priority", 0));
  req.set_priority(static_cast<int32_t>(priority));
  req.set_request_id(args.GetOr("request-id", ""));
  ASSIGN_OR_RETURN(int64_t logprobs, args.GetInt("logprobs", 0));
  if (logprobs > 0) {
    req.mutable_logprobs()->set_logprobs(true);
    req.mutable_logprobs()->set_top_logprobs(static_cast<int32_t>(logprobs));
  }
  req.set_return_token_ids(true);
  ASSIGN_OR_RETURN(int64_t timeout_ms, args.GetInt("timeout-ms", 60000));

  // A secured server (docs/serving.md, "Security"): TLS with --tls (system roots) or --tls-ca,
  // mTLS with --tls-cert/--tls-key, and the API key from --api-key or TANDEM_API_KEY.
  std::shared_ptr<::grpc::ChannelCredentials> credentials = ::grpc::InsecureChannelCredentials();
  auth::TlsFiles tls;
  tls.ca = args.GetOr("tls-ca", "");
  tls.cert = args.GetOr("tls-cert", "");
  tls.key = args.GetOr("tls-key", "");
  if (args.Has("tls") || tls.any()) {
    ASSIGN_OR_RETURN(credentials, auth::TlsChannelCredentials(tls));
  }
  std::string api_key = args.GetOr("api-key", "");
  if (const char* env = std::getenv("TANDEM_API_KEY"); api_key.empty() && env != nullptr) {
    api_key = env;
  }
  auto channel = ::grpc::CreateChannel(args.GetOr("server", "127.0.0.1:50051"), credentials);
  auto stub = v1::Tandem::NewStub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  if (!api_key.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", api_key));
  const bool show_ids = args.Has("ids");
  if (args.Has("stream")) {
    auto reader = stub->GenerateStream(&ctx, req);
    v1::GenerateStreamResponse msg;
    std::vector<int32_t> ids;
    v1::GenerateStreamResponse last;
    while (reader->Read(&msg)) {
      std::fputs(msg.text_delta().c_str(), stdout);
      std::fflush(stdout);
      ids.insert(ids.end(), msg.token_ids().begin(), msg.token_ids().end());
      last = msg;
    }
    const ::grpc::Status s = reader->Finish();
    std::printf("\n");
    if (!s.ok()) return FromGrpc(s);
    if (show_ids) std::printf("ids: %s\n", absl::StrJoin(ids, ",").c_str());
    std::fprintf(stderr, "[%s, %d prompt + %d generated tokens, first token %.1f ms]\n",
                 ReasonName(last.finish_reason()), last.usage().prompt_tokens(),
                 last.usage().generated_tokens(), last.usage().first_token_time_us() / 1000.0);
    return absl::OkStatus();
  }
  v1::GenerateResponse resp;
  const ::grpc::Status s = stub->Generate(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s);
  std::printf("%s\n", resp.text().c_str());
  if (show_ids) std::printf("ids: %s\n", absl::StrJoin(resp.token_ids(), ",").c_str());
  std::fprintf(stderr, "[%s, %d prompt + %d generated tokens, first token %.1f ms]\n",
               ReasonName(resp.finish_reason()), resp.usage().prompt_tokens(),
               resp.usage().generated_tokens(), resp.usage().first_token_time_us() / 1000.0);
  return absl::OkStatus();
}

}  // namespace tandem::cli
