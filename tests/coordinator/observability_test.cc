// End-to-end observability of a real `tandem serve` (coordinator + tp=2 x pp=2 worker processes of
// the tiny model): /metrics scraped before and after a known workload moves by exactly that
// workload and parses strictly; the workers' /metrics agree with the coordinator's step count;
// JSON access-log lines carry the W3C trace id sent in `traceparent` (and a generated one when
// none is sent), and the response metadata returns it; requests refused before admission get an
// access-log line too; every worker's DEBUG step lines carry the trace ids of the step's requests.
// The server runs in its own process group, killed and reaped at the end.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tests/metrics/exposition_parser.h"

namespace tandem::coordinator {
namespace {

namespace v1 = ::tandem::v1;
using Clock = std::chrono::system_clock;
using metrics::testing::Exposition;
using metrics::testing::ParseExposition;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A base port with `n` consecutive free ports on 127.0.0.1 (checked by binding; another process
// could still take one before the server does, which would fail the server's start loudly).
int FreePortRange(int n) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int base = 20000 + (getpid() * 7 + attempt * 97) % 30000;
    bool ok = true;
    for (int k = 0; k < n && ok; ++k) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(base + k));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
      close(fd);
    }
    if (ok) return base;
  }
  return 0;
}

// `tandem serve` with stdout and stderr to files, in its own process group that dies with this
// test binary.
class Serve {
 public:
  Serve(const std::vector<std::string>& extra,
        const std::vector<std::pair<std::string, std::string>>& env) {
    const std::string base = ::testing::TempDir() + "/obs_serve_" + std::to_string(getpid());
    out_path_ = base + ".out";
    err_path_ = base + ".err";
    std::vector<std::string> argv = {std::string(TANDEM_BINARY_DIR) + "/bin/tandem", "serve",
                                     "--port", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      setenv("XDG_CACHE_HOME", (std::string(TANDEM_BINARY_DIR) + "/test-cache").c_str(), 1);
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      if (!freopen(out_path_.c_str(), "w", stdout)) _exit(127);
      if (!freopen(err_path_.c_str(), "w", stderr)) _exit(127);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    setpgid(pid_, pid_);
    const std::regex listening("listening on [^:]+:([0-9]+)");
    const std::regex metrics("metrics on http://[^:]+:([0-9]+)/metrics");
    const auto until = Clock::now() + std::chrono::seconds(120);
    while (Clock::now() < until && port_ == 0) {
      const std::string text = ReadFile(out_path_);
      std::smatch m;
      if (std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
      if (std::regex_search(text, m, metrics)) metrics_port_ = std::stoi(m[1]);
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~Serve() {
    if (pid_ > 0) {
      kill(-pid_, SIGTERM);
      const auto until = Clock::now() + std::chrono::seconds(10);
      int status = 0;
      while (waitpid(pid_, &status, WNOHANG) == 0 && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      kill(-pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    std::remove(out_path_.c_str());
    std::remove(err_path_.c_str());
  }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string Stderr() const { return ReadFile(err_path_); }

 private:
  pid_t pid_ = 0;
  int port_ = 0;
  int metrics_port_ = 0;
  std::string out_path_, err_path_;
};

Exposition Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  auto res = client.Get("/metrics");
  EXPECT_TRUE(res) << "no answer from 127.0.0.1:" << port;
  if (!res) return {};
  EXPECT_EQ(res->status, 200);
  auto parsed = ParseExposition(res->body);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << res->body;
  return parsed.ok() ? *parsed : Exposition{};
}

v1::GenerateRequest Tokens(int prompt_len, int max_new) {
  v1::GenerateRequest r;
  for (int i = 0; i < prompt_len; ++i) r.mutable_tokens()->add_ids(100 + 17 * i);
  r.mutable_stopping()->set_max_new_tokens(max_new);
  r.mutable_stopping()->set_ignore_eos(true);
  return r;
}

// A streamed request (with `traceparent` when not empty); returns the final status and the
// response's traceparent.
::grpc::Status Stream(v1::Tandem::Stub& stub, const v1::GenerateRequest& req,
                      std::string* traceparent_out, const std::string& traceparent = "") {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
  if (!traceparent.empty()) ctx.AddMetadata("traceparent", traceparent);
  auto reader = stub.GenerateStream(&ctx, req);
  v1::GenerateStreamResponse msg;
  while (reader->Read(&msg)) {
  }
  ::grpc::Status s = reader->Finish();
  auto it = ctx.GetServerInitialMetadata().find("traceparent");
  if (it != ctx.GetServerInitialMetadata().end()) {
    *traceparent_out = std::string(it->second.data(), it->second.size());
  }
  return s;
}

const char kGenerate[] =
    "tandem_rpc_requests_total{code=\"OK\",method=\"tandem.v1.Tandem/Generate\"}";
const char kGenerateBad[] =
    "tandem_rpc_requests_total{code=\"INVALID_ARGUMENT\",method=\"tandem.v1.Tandem/Generate\"}";
const char kStream[] =
    "tandem_rpc_requests_total{code=\"OK\",method=\"tandem.v1.Tandem/GenerateStream\"}";
const char kStreamFull[] =
    "tandem_rpc_requests_total{code=\"RESOURCE_EXHAUSTED\",method=\"tandem.v1.Tandem/"
    "GenerateStream\"}";
const char kTokenize[] =
    "tandem_rpc_requests_total{code=\"OK\",method=\"tandem.v1.Tandem/Tokenize\"}";
const char kFinishedLength[] =
    "tandem_requests_finished_total{code=\"OK\",finish_reason=\"length\"}";

TEST(ServeObservabilityTest, MetricsMoveByExactlyTheWorkloadAndLogsCarryTraceIds) {
  const int worker_base = FreePortRange(4);
  ASSERT_GT(worker_base, 0);
  // The workload's prompts (24 tokens) all fit the queue at once; a 30-token prompt never does.
  Serve serve(
      {"--metrics-port", "0", "--worker-metrics-port-base", std::to_string(worker_base),
       "--log-format", "json", "--max-new-tokens", "64", "--max-queued-prompt-tokens", "24"},
      {{"TANDEM_LOG_LEVEL", "debug"}});
  ASSERT_NE(serve.port(), 0) << "tandem serve did not start:\n" << serve.Stderr();
  ASSERT_NE(serve.metrics_port(), 0);
  auto channel = ::grpc::CreateChannel(serve.address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::Tandem::NewStub(channel);

  const Exposition before = Scrape(serve.metrics_port());
  EXPECT_EQ(before.Get("tandem_replica_state{state=\"ready\"}"), 1);
  EXPECT_EQ(before.Get("tandem_replica_state{state=\"loading\"}"), 0);
  EXPECT_EQ(before.types.at("tandem_time_to_first_token_seconds"), "histogram");
  EXPECT_EQ(before.types.at("tandem_generation_tokens_total"), "counter");

  // The workload: 3 streams + 1 unary with tokens, 2 invalid unaries, 1 unparsable unary, 1 stream
  // refused for a full queue, 1 Tokenize.
  const std::vector<std::pair<int, int>> shapes = {{5, 4}, {7, 6}, {9, 8}, {3, 2}};
  const std::string sent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  std::vector<std::string> traces(3);
  std::vector<std::thread> streams;
  for (int i = 0; i < 3; ++i) {
    streams.emplace_back([&, i] {
      v1::GenerateRequest req = Tokens(shapes[i].first, shapes[i].second);
      req.set_request_id("obs-stream-" + std::to_string(i));
      EXPECT_TRUE(Stream(*stub, req, &traces[i]).ok());
    });
  }
  for (auto& t : streams) t.join();
  {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
    ctx.AddMetadata("traceparent", "00-" + sent_trace + "-00f067aa0ba902b7-01");
    v1::GenerateRequest req = Tokens(shapes[3].first, shapes[3].second);
    req.set_request_id("obs-unary");
    v1::GenerateResponse resp;
    ASSERT_TRUE(stub->Generate(&ctx, req, &resp).ok());
    auto it = ctx.GetServerInitialMetadata().find("traceparent");
    ASSERT_NE(it, ctx.GetServerInitialMetadata().end());
    const std::string back(it->second.data(), it->second.size());
    EXPECT_TRUE(std::regex_match(back, std::regex("00-" + sent_trace + "-[0-9a-f]{16}-01")))
        << back;
    EXPECT_EQ(back.find("00f067aa0ba902b7"), std::string::npos) << "the server's own span id";
  }
  const std::string invalid_trace = "0af7651916cd43dd8448eb211c80319c";
  const std::string full_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
  {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("traceparent", "00-" + invalid_trace + "-b7ad6b7169203331-01");
    v1::GenerateRequest req = Tokens(3, 1000);  // over --max-new-tokens 64
    req.set_request_id("obs-invalid");
    v1::GenerateResponse resp;
    EXPECT_EQ(stub->Generate(&ctx, req, &resp).error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  }
  const std::string unparsed_trace = "6cf92f3577b34da6a3ce929d0e0e4738";
  std::string long_id;  // 600 bytes, over the 256-byte limit
  for (int i = 0; i < 300; ++i) long_id += "\xc3\xa9";
  {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
    v1::GenerateRequest req = Tokens(3, 2);
    req.set_request_id(long_id);
    v1::GenerateResponse resp;
    EXPECT_EQ(stub->Generate(&ctx, req, &resp).error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    // A request that cannot be parsed: `text` (field 1) is not UTF-8.
    ::grpc::GenericStub generic(channel);
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("traceparent", "00-" + unparsed_trace + "-b7ad6b7169203331-01");
    const char bytes[] = {0x0a, 0x02, static_cast<char>(0xff), static_cast<char>(0xfe)};
    ::grpc::Slice slice(bytes, sizeof(bytes));
    ::grpc::ByteBuffer request(&slice, 1), response;
    std::promise<::grpc::Status> done;
    generic.UnaryCall(&ctx, "/tandem.v1.Tandem/Generate", ::grpc::StubOptions(), &request,
                      &response, [&done](::grpc::Status s) { done.set_value(s); });
    EXPECT_EQ(done.get_future().get().error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::GenerateRequest req = Tokens(30, 2);  // over --max-queued-prompt-tokens 24
    req.set_request_id("obs-full");
    std::string unused;
    EXPECT_EQ(Stream(*stub, req, &unused, "00-" + full_trace + "-b7ad6b7169203331-01").error_code(),
              ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
    v1::TokenizeRequest req;
    req.set_text("hello");
    v1::TokenizeResponse resp;
    EXPECT_TRUE(stub->Tokenize(&ctx, req, &resp).ok());
  }

  const Exposition after = Scrape(serve.metrics_port());
  auto delta = [&](const std::string& series) {
    return after.GetOr0(series) - before.GetOr0(series);
  };
  int prompt = 0, generated = 0, itl = 0;
  for (const auto& [p, g] : shapes) {
    prompt += p;
    generated += g;
    itl += g - 1;
  }
  EXPECT_EQ(delta(kStream), 3);
  EXPECT_EQ(delta(kGenerate), 1);
  EXPECT_EQ(delta(kGenerateBad), 3);
  EXPECT_EQ(delta(kStreamFull), 1);
  EXPECT_EQ(delta(kTokenize), 1);
  EXPECT_EQ(delta(kFinishedLength), 4);
  EXPECT_EQ(delta("tandem_requests_accepted_total"), 4);
  EXPECT_EQ(delta("tandem_prompt_tokens_total"), prompt);
  EXPECT_EQ(delta("tandem_generation_tokens_total"), generated);
  EXPECT_EQ(delta("tandem_time_to_first_token_seconds_count"), 4);
  EXPECT_EQ(delta("tandem_request_duration_seconds_count"), 4);
  EXPECT_EQ(delta("tandem_request_queue_time_seconds_count"), 4);
  EXPECT_EQ(delta("tandem_inter_token_latency_seconds_count"), itl);
  EXPECT_EQ(delta("tandem_request_prompt_tokens_sum"), prompt);
  EXPECT_EQ(delta("tandem_request_generation_tokens_sum"), generated);
  // Every token fed to the model once: the prompts, and each generated token but the last.
  EXPECT_EQ(delta("tandem_step_tokens_sum"), prompt + generated - 4);
  EXPECT_EQ(delta("tandem_step_duration_seconds_count"), delta("tandem_steps_total"));
  EXPECT_GT(delta("tandem_steps_total"), 0);
  EXPECT_EQ(after.Get("tandem_preemptions_total"), 0);
  EXPECT_EQ(after.Get("tandem_queue_requests"), 0);
  EXPECT_EQ(after.Get("tandem_running_sequences"), 0);
  EXPECT_EQ(after.Get("tandem_ssm_slots_used"), 0);
  EXPECT_EQ(after.Get("tandem_kv_blocks_used"), 0);
  EXPECT_GT(after.Get("tandem_kv_blocks_total"), 0);
  EXPECT_EQ(after.Get("tandem_replica_recoveries_total"), 0);
  // A latency histogram's +Inf bucket is its count, and the e2e time is at least the TTFT.
  EXPECT_EQ(after.Get("tandem_request_duration_seconds_bucket{le=\"+Inf\"}"),
            after.Get("tandem_request_duration_seconds_count"));
  EXPECT_GE(after.Get("tandem_request_duration_seconds_sum"),
            after.Get("tandem_time_to_first_token_seconds_sum"));

  // Every worker ran exactly the coordinator's steps; stage 0 sent and stage 1 received hidden
  // states; every rank holds weights.
  const double steps = after.Get("tandem_steps_total");
  // `tandem serve` without --model runs the built-in default model (models/default/).
  std::ifstream config_file(std::string(TANDEM_SOURCE_DIR) + "/models/default/config.json");
  const double hidden = nlohmann::json::parse(config_file).at("hidden_size").get<double>();
  for (int rank = 0; rank < 4; ++rank) {
    SCOPED_TRACE("worker rank " + std::to_string(rank));
    const Exposition w = Scrape(worker_base + rank);
    EXPECT_EQ(w.Get("tandem_worker_steps_total"), steps);
    EXPECT_EQ(w.Get("tandem_worker_step_duration_seconds_count"), steps);
    EXPECT_EQ(w.Get("tandem_worker_step_tokens_total"), prompt + generated - 4);
    EXPECT_EQ(w.Get("tandem_worker_loaded"), 1);
    EXPECT_GT(w.Get("tandem_worker_weight_bytes"), 0);
    EXPECT_GT(w.Get("tandem_worker_collective_calls_total{op=\"all_reduce\"}"), 0);
    const bool first_stage = rank < 2;  // tp=2: ranks 0, 1 are stage 0
    EXPECT_EQ(w.Get("tandem_worker_step_phase_seconds_count{phase=\"embed\"}"),
              first_stage ? steps : 0);
    EXPECT_EQ(w.Get("tandem_worker_step_phase_seconds_count{phase=\"sample\"}"),
              first_stage ? 0 : steps);
    EXPECT_EQ(
        w.Get(first_stage ? "tandem_worker_pipeline_transfer_bytes_total{direction=\"send\"}"
                          : "tandem_worker_pipeline_transfer_bytes_total{direction=\"recv\"}"),
        (prompt + generated - 4) * hidden * 4.0)
        << "tokens x hidden_size x 4 bytes";
  }

  // One JSON access-log line per finished request, carrying the trace id; no prompt text.
  const std::string log = serve.Stderr();
  std::istringstream lines(log);
  int access = 0;
  std::map<std::string, nlohmann::json> refused;  // by request id
  std::string worker_logs;                        // "<dir>/rank" of the local workers' logs
  bool saw_sent_trace = false;
  std::vector<std::string> stream_traces;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << line;
    ASSERT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << line;
    EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
        << line;
    EXPECT_EQ(j.value("component", ""), "coordinator") << line;
    const std::string msg = j["msg"];
    std::smatch m;
    if (std::regex_search(msg, m, std::regex("local workers' logs: (\\S+)<rank>\\.log"))) {
      worker_logs = m[1];
    }
    if (msg == "request refused") refused[j.value("request_id", "")] = j;
    if (msg != "request finished") continue;
    ++access;
    EXPECT_FALSE(j.contains("prompt") || j.contains("prompt_ids")) << line;
    EXPECT_EQ(j["status"], "OK") << line;
    EXPECT_EQ(j["finish_reason"], "length") << line;
    EXPECT_TRUE(std::regex_match(j["trace_id"].get<std::string>(), std::regex("[0-9a-f]{32}")))
        << line;
    if (j["request_id"] == "obs-unary") {
      saw_sent_trace = j["trace_id"] == sent_trace;
      EXPECT_EQ(j["prompt_tokens"], 3);
      EXPECT_EQ(j["generated_tokens"], 2);
      EXPECT_GE(j["total_s"].get<double>(), j["ttft_s"].get<double>());
    } else {
      stream_traces.push_back(j["trace_id"]);
    }
  }
  EXPECT_EQ(access, 4) << log;
  EXPECT_TRUE(saw_sent_trace) << log;

  // One access line per refused request: status, reason, trace id; no prompt.
  ASSERT_EQ(refused.size(), 4u) << log;
  // An id over the limit is logged cut to 256 bytes, at a character boundary.
  const nlohmann::json& long_one = refused[long_id.substr(0, 256)];
  EXPECT_EQ(long_one.value("status", ""), "INVALID_ARGUMENT") << long_one;
  EXPECT_NE(long_one.value("error", "").find("request_id"), std::string::npos) << long_one;
  const nlohmann::json& unparsed = refused[""];
  EXPECT_EQ(unparsed.value("method", ""), "Generate") << unparsed;
  EXPECT_EQ(unparsed.value("status", ""), "INVALID_ARGUMENT") << unparsed;
  EXPECT_EQ(unparsed.value("trace_id", ""), unparsed_trace) << unparsed;
  EXPECT_NE(unparsed.value("error", "").find("text: is not valid UTF-8"), std::string::npos)
      << unparsed;
  const nlohmann::json& invalid = refused["obs-invalid"];
  EXPECT_EQ(invalid.value("method", ""), "Generate") << invalid;
  EXPECT_EQ(invalid.value("status", ""), "INVALID_ARGUMENT") << invalid;
  EXPECT_EQ(invalid.value("trace_id", ""), invalid_trace) << invalid;
  EXPECT_NE(invalid.value("error", "").find("max_new_tokens"), std::string::npos) << invalid;
  const nlohmann::json& full = refused["obs-full"];
  EXPECT_EQ(full.value("method", ""), "GenerateStream") << full;
  EXPECT_EQ(full.value("status", ""), "RESOURCE_EXHAUSTED") << full;
  EXPECT_EQ(full.value("trace_id", ""), full_trace) << full;
  EXPECT_NE(full.value("error", "").find("queue is full"), std::string::npos) << full;
  for (const auto& [id, j] : refused) {
    EXPECT_FALSE(j.contains("prompt") || j.contains("prompt_ids")) << j;
  }

  // Every rank's DEBUG step lines carry the trace ids of the step's requests: the unary request's
  // (sent in traceparent) is in some step of every rank.
  ASSERT_FALSE(worker_logs.empty()) << log;
  for (int rank = 0; rank < 4; ++rank) {
    SCOPED_TRACE("worker rank " + std::to_string(rank));
    const std::string wlog = ReadFile(worker_logs + std::to_string(rank) + ".log");
    std::istringstream wlines(wlog);
    int steps_with_trace = 0;
    for (std::string line; std::getline(wlines, line);) {
      if (line.empty() || line[0] != '{') continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      ASSERT_FALSE(j.is_discarded()) << line;
      if (j.value("msg", "") != "step") continue;
      EXPECT_EQ(j.value("component", ""), "worker") << line;
      EXPECT_EQ(j.value("rank", -1), rank) << line;
      EXPECT_EQ(j.value("level", ""), "debug") << line;
      if (j.value("trace_ids", "").find(sent_trace) != std::string::npos) ++steps_with_trace;
    }
    // The unary request: a 3-token prompt and 2 generated tokens, so 2 steps feed it.
    EXPECT_EQ(steps_with_trace, 2) << wlog;
  }
  // Requests sent without traceparent got a generated trace id, returned to the client.
  for (const std::string& t : traces) {
    ASSERT_EQ(t.size(), 55u) << t;
    EXPECT_NE(std::find(stream_traces.begin(), stream_traces.end(), t.substr(3, 32)),
              stream_traces.end())
        << t;
  }
}

}  // namespace
}  // namespace tandem::coordinator
