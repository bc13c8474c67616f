// serve_loadgen: a load generator for the public tandem.v1 API. Not a test and not Google
// Benchmark: a plain gRPC client that drives GenerateStream and reports latency and throughput.
//
// It connects to --server ADDR or (default) starts `<bindir>/tandem serve --port 0 <--serve-args>`
// itself, in its own process group with PR_SET_PDEATHSIG, and kills and reaps that group on every
// way out (normal end, error, SIGINT/SIGTERM). Load: --concurrency N closed-loop clients (each
// sends its next request when the previous one ends) or --rate R open-loop Poisson arrivals.
// Prompts are random token ids; ignore_eos makes every output exactly max_new_tokens long. All
// requests are drawn from --seed before the run, so the same seed gives the same workload in either
// mode. --shared-prefix N puts the same N random tokens (drawn once) before every prompt: the
// prefix-cache workload (bench/prefix_cache.sh).
//
// Per request: TTFT (send -> first message with tokens), inter-token latencies (the gap between
// two token messages divided by the tokens in the later one, once per token) and end-to-end
// latency; the server's usage.cached_tokens (0 when it does not report it). Overall: generated
// tokens/s, requests/s, wall time, errors by status code, prompt tokens and the share of them the
// server served from its prefix cache, and GetModelInfo's prefix_cache counters when the server
// reports them. Prints a summary and writes --out FILE.json (config, machine, server layout,
// statistics).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_context.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace {

namespace v1 = ::tandem::v1;
using Clock = std::chrono::steady_clock;

// ---- Flags -----------------------------------------------------------------------------------

struct Range {
  int64_t lo = 0;
  int64_t hi = 0;
};

struct Config {
  std::string server;  // empty: start `tandem serve`
  std::string tandem;  // the tandem binary (default: next to this one)
  std::string serve_args;
  int64_t concurrency = 0;  // closed loop when > 0
  double rate = 0;          // open loop when > 0 (requests/s)
  int64_t requests = 100;
  int64_t warmup = 2;
  Range prompt_len{16, 64};   // the unique tokens of each prompt (after the shared prefix)
  int64_t shared_prefix = 0;  // tokens every prompt starts with
  Range max_new_tokens{32, 64};
  uint64_t seed = 1;
  double timeout_s = 600;
  double startup_timeout_s = 180;
  std::string out;
  std::string label;
};

const char kUsage[] =
    "usage: serve_loadgen [--server HOST:PORT | --tandem PATH --serve-args \"ARGS\"]\n"
    "                     [--concurrency N | --rate R] [--requests M] [--warmup K]\n"
    "                     [--prompt-len A:B] [--shared-prefix N] [--max-new-tokens A:B]\n"
    "                     [--seed S] [--timeout-s T] [--startup-timeout-s T] [--label NAME]\n"
    "                     [--out FILE.json]\n"
    "  --server            an already running server (default: start `tandem serve --port 0`)\n"
    "  --tandem            the tandem binary to start (default: tandem next to serve_loadgen)\n"
    "  --serve-args        extra arguments for `tandem serve`, split at spaces\n"
    "  --concurrency N     N closed-loop clients (default 1 when --rate is not given)\n"
    "  --rate R            open loop: Poisson arrivals at R requests/s\n"
    "  --requests M        measured requests (default 100)\n"
    "  --warmup K          requests sent one by one before measuring, not counted (default 2)\n"
    "  --prompt-len A:B    prompt length in tokens, uniform in [A, B] (default 16:64); with\n"
    "                      --shared-prefix, the unique tokens after the prefix\n"
    "  --shared-prefix N   every prompt starts with the same N random tokens, drawn once from\n"
    "                      --seed (the prefix-cache workload) (default 0)\n"
    "  --max-new-tokens A:B  generated tokens, uniform in [A, B] (default 32:64; ignore_eos)\n"
    "  --seed S            seeds prompts and lengths (and the Poisson arrivals) (default 1)\n"
    "  --timeout-s T       gRPC deadline of each request (default 600)\n"
    "  --out FILE.json     write the configuration and all statistics as JSON\n";

std::optional<int64_t> ParseInt(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// A bound for --shared-prefix well above any model's context, so that a typo fails here and not
// as a huge allocation (the server's context limit is checked once it answers).
constexpr int64_t kMaxSharedPrefix = 1 << 24;

// Returns an error message, or "" when the flags are valid.
std::string ParseFlags(int argc, char** argv, Config& c) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return "help";
    if (arg.rfind("--", 0) != 0) return "unexpected argument '" + arg + "' (flags start with --)";
    std::string name = arg.substr(2), value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else {
      if (i + 1 >= argc) return "--" + name + " needs a value";
      value = argv[++i];
    }
    if (flags.count(name) > 0) return "--" + name + " is given twice";
    flags[name] = value;
  }
  static const char* kKnown[] = {
      "server", "tandem",     "serve-args",     "concurrency", "rate",      "requests",
      "warmup", "prompt-len", "max-new-tokens", "seed",        "timeout-s", "startup-timeout-s",
      "out",    "label",      "shared-prefix"};
  for (const auto& [name, value] : flags) {
    if (std::find_if(std::begin(kKnown), std::end(kKnown),
                     [&](const char* k) { return name == k; }) == std::end(kKnown)) {
      return "unknown flag --" + name;
    }
  }
  auto get_int = [&](const char* name, int64_t lo, int64_t& out) -> std::string {
    auto it = flags.find(name);
    if (it == flags.end()) return "";
    auto v = ParseInt(it->second);
    if (!v) return std::string("--") + name + ": '" + it->second + "' is not an integer";
    if (*v < lo) {
      return std::string("--") + name + ": " + it->second + " is below " + std::to_string(lo);
    }
    out = *v;
    return "";
  };
  auto get_double = [&](const char* name, double& out) -> std::string {
    auto it = flags.find(name);
    if (it == flags.end()) return "";
    auto v = ParseDouble(it->second);
    if (!v || *v <= 0) {
      return std::string("--") + name + ": '" + it->second + "' is not a positive number";
    }
    out = *v;
    return "";
  };
  auto get_range = [&](const char* name, Range& out) -> std::string {
    auto it = flags.find(name);
    if (it == flags.end()) return "";
    const std::string& s = it->second;
    const auto colon = s.find(':');
    std::optional<int64_t> a, b;
    if (colon == std::string::npos) {
      a = b = ParseInt(s);
    } else {
      a = ParseInt(s.substr(0, colon));
      b = ParseInt(s.substr(colon + 1));
    }
    if (!a || !b) return std::string("--") + name + ": '" + s + "' is not N or A:B";
    if (*a < 1 || *b < *a) {
      return std::string("--") + name + ": '" + s + "' needs 1 <= A <= B";
    }
    out = {*a, *b};
    return "";
  };
  std::string err;
  int64_t seed = 1;
  if (!(err = get_int("concurrency", 1, c.concurrency)).empty()) return err;
  if (!(err = get_double("rate", c.rate)).empty()) return err;
  if (!(err = get_int("requests", 1, c.requests)).empty()) return err;
  if (!(err = get_int("warmup", 0, c.warmup)).empty()) return err;
  if (!(err = get_int("seed", 0, seed)).empty()) return err;
  if (!(err = get_range("prompt-len", c.prompt_len)).empty()) return err;
  if (!(err = get_int("shared-prefix", 0, c.shared_prefix)).empty()) return err;
  if (c.shared_prefix > kMaxSharedPrefix) {
    return "--shared-prefix: " + std::to_string(c.shared_prefix) + " is above " +
           std::to_string(kMaxSharedPrefix);
  }
  if (!(err = get_range("max-new-tokens", c.max_new_tokens)).empty()) return err;
  if (!(err = get_double("timeout-s", c.timeout_s)).empty()) return err;
  if (!(err = get_double("startup-timeout-s", c.startup_timeout_s)).empty()) return err;
  c.seed = static_cast<uint64_t>(seed);
  if (flags.count("concurrency") && flags.count("rate")) {
    return "--concurrency (closed loop) and --rate (open loop) exclude each other";
  }
  if (c.concurrency == 0 && c.rate == 0) c.concurrency = 1;
  if (flags.count("server")) {
    c.server = flags["server"];
    if (c.server.empty() || c.server.find(':') == std::string::npos) {
      return "--server: '" + c.server + "' is not HOST:PORT";
    }
    if (flags.count("tandem") || flags.count("serve-args")) {
      return "--tandem and --serve-args start a server; they do not go with --server";
    }
  }
  if (flags.count("tandem")) c.tandem = flags["tandem"];
  if (flags.count("serve-args")) c.serve_args = flags["serve-args"];
  if (flags.count("out")) {
    c.out = flags["out"];
    if (c.out.empty()) return "--out: empty file name";
  }
  if (flags.count("label")) c.label = flags["label"];
  if (c.server.empty() && c.tandem.empty()) {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return "cannot find this binary's directory (/proc/self/exe); pass --tandem";
    c.tandem = (exe.parent_path() / "tandem").string();
  }
  if (c.server.empty() && access(c.tandem.c_str(), X_OK) != 0) {
    return "--tandem: " + c.tandem + " is not an executable file";
  }
  return "";
}

// ---- The served process ----------------------------------------------------------------------

volatile sig_atomic_t g_server_pgid = 0;
char g_server_output[64] = {};  // the server's output file, removed by OnSignal too

void OnSignal(int sig) {
  if (g_server_pgid > 0) kill(-g_server_pgid, SIGKILL);
  if (g_server_output[0] != '\0') unlink(g_server_output);
  signal(sig, SIG_DFL);
  raise(sig);
}

// `tandem serve` in its own process group; the group is killed and the leader reaped on
// destruction. The server dies with this process (PR_SET_PDEATHSIG) if it is killed outright.
class ServeProcess {
 public:
  ServeProcess() = default;
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;
  ~ServeProcess() { Stop(); }

  // Returns "" on success (address() is then set) or an error with the server's output.
  std::string Start(const Config& c) {
    char tmpl[] = "/tmp/serve_loadgen_XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) return std::string("mkstemp: ") + std::strerror(errno);
    close(fd);
    out_path_ = tmpl;
    std::snprintf(g_server_output, sizeof(g_server_output), "%s", tmpl);
    std::vector<std::string> argv = {c.tandem, "serve", "--port", "0"};
    std::istringstream extra(c.serve_args);
    for (std::string a; extra >> a;) argv.push_back(a);
    command_.clear();
    for (const auto& a : argv) command_ += (command_.empty() ? "" : " ") + a;
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) return std::string("fork: ") + std::strerror(errno);
    if (pid_ == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      if (freopen(out_path_.c_str(), "w", stdout) == nullptr) _exit(127);
      dup2(fileno(stdout), fileno(stderr));
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    setpgid(pid_, pid_);
    g_server_pgid = pid_;
    const auto until = Clock::now() + std::chrono::duration<double>(c.startup_timeout_s);
    while (Clock::now() < until) {
      const std::string text = Output();
      const auto at = text.find("listening on ");
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        const auto end = text.find_first_of(" \n", at + 13);
        address_ = text.substr(at + 13, end - (at + 13));
        return "";
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        g_server_pgid = 0;
        return "`" + command_ + "` exited before listening:\n" + Output();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "`" + command_ + "` did not report 'listening on' within " +
           std::to_string(c.startup_timeout_s) + " s:\n" + Output();
  }

  void Stop() {
    if (pid_ > 0) {
      kill(-pid_, SIGTERM);
      const auto until = Clock::now() + std::chrono::seconds(10);
      int status = 0;
      while (waitpid(pid_, &status, WNOHANG) == 0 && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      kill(-pid_, SIGKILL);  // the workers too, whatever the leader did
      waitpid(pid_, &status, 0);
      pid_ = 0;
      g_server_pgid = 0;
    }
    if (!out_path_.empty()) {
      g_server_output[0] = '\0';
      std::remove(out_path_.c_str());
      out_path_.clear();
    }
  }

  std::string Output() const {
    std::ifstream in(out_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  const std::string& address() const { return address_; }
  const std::string& command() const { return command_; }

 private:
  pid_t pid_ = 0;
  std::string out_path_;
  std::string address_;
  std::string command_;
};

// ---- The load --------------------------------------------------------------------------------

struct Work {
  std::vector<int32_t> prompt;
  int32_t max_new_tokens = 0;
};

struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string error;
  double ttft_ms = -1;
  double e2e_ms = 0;
  double start_s = 0;  // since the run began
  std::vector<double> itl_ms;
  int64_t generated = 0;
  int64_t expected = 0;
  int64_t server_first_token_us = -1;
  int64_t server_queue_us = -1;
  int64_t cached_tokens = 0;  // usage.cached_tokens; 0 when the server does not report it
};

Outcome RunOne(v1::Tandem::Stub& stub, const Work& w, double timeout_s, Clock::time_point t0) {
  v1::GenerateRequest req;
  req.mutable_tokens()->mutable_ids()->Add(w.prompt.begin(), w.prompt.end());
  req.mutable_stopping()->set_max_new_tokens(w.max_new_tokens);
  req.mutable_stopping()->set_ignore_eos(true);
  req.set_skip_text(false);
  Outcome o;
  o.expected = w.max_new_tokens;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::duration<double>(timeout_s)));
  const auto start = Clock::now();
  o.start_s = std::chrono::duration<double>(start - t0).count();
  auto reader = stub.GenerateStream(&ctx, req);
  v1::GenerateStreamResponse msg;
  Clock::time_point last;
  while (reader->Read(&msg)) {
    const auto now = Clock::now();
    const int n = msg.token_ids_size();
    if (n > 0) {
      if (o.generated == 0) {
        o.ttft_ms = std::chrono::duration<double, std::milli>(now - start).count();
      } else {
        const double gap = std::chrono::duration<double, std::milli>(now - last).count() / n;
        for (int k = 0; k < n; ++k) o.itl_ms.push_back(gap);
      }
      last = now;
      o.generated += n;
    }
    if (msg.has_usage()) {
      o.server_first_token_us = msg.usage().first_token_time_us();
      o.server_queue_us = msg.usage().queue_time_us();
      o.cached_tokens = msg.usage().cached_tokens();
    }
  }
  const grpc::Status status = reader->Finish();
  o.e2e_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  o.code = status.error_code();
  if (!status.ok()) o.error = status.error_message();
  return o;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNRECOGNIZED";
  }
}

// ---- Statistics and output -------------------------------------------------------------------

struct Summary {
  int64_t n = 0;
  double mean = 0, min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

// Percentiles by linear interpolation between order statistics.
Summary Summarize(std::vector<double> v) {
  Summary s;
  s.n = static_cast<int64_t>(v.size());
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    const double at = p * static_cast<double>(v.size() - 1);
    const size_t i = static_cast<size_t>(at);
    const double f = at - static_cast<double>(i);
    return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
  };
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  s.min = v.front();
  s.max = v.back();
  s.p50 = pct(0.5);
  s.p90 = pct(0.9);
  s.p99 = pct(0.99);
  return s;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  return out + "\"";
}

std::string Num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.4f", x);
  return buf;
}

std::string JsonSummary(const Summary& s) {
  return "{\"n\": " + std::to_string(s.n) + ", \"mean\": " + Num(s.mean) +
         ", \"min\": " + Num(s.min) + ", \"p50\": " + Num(s.p50) + ", \"p90\": " + Num(s.p90) +
         ", \"p99\": " + Num(s.p99) + ", \"max\": " + Num(s.max) + "}";
}

std::string UtcNow() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<v1::GetModelInfoResponse> ModelInfo(v1::Tandem::Stub& stub, std::string& error) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetModelInfoResponse info;
  const grpc::Status s = stub.GetModelInfo(&ctx, {}, &info);
  if (!s.ok()) {
    error = std::string("GetModelInfo: ") + CodeName(s.error_code()) + ": " + s.error_message();
    return std::nullopt;
  }
  return info;
}

std::string PrefixCacheJson(const v1::PrefixCacheInfo& p) {
  std::ostringstream j;
  j << "{\"enabled\": " << (p.enabled() ? "true" : "false")
    << ", \"num_snapshots\": " << p.num_snapshots()
    << ", \"used_snapshots\": " << p.used_snapshots()
    << ", \"cached_blocks\": " << p.cached_blocks() << ", \"lookups\": " << p.lookups()
    << ", \"hits\": " << p.hits() << ", \"lookup_tokens\": " << p.lookup_tokens()
    << ", \"cached_tokens\": " << p.cached_tokens()
    << ", \"evicted_blocks\": " << p.evicted_blocks()
    << ", \"evicted_snapshots\": " << p.evicted_snapshots()
    << ", \"snapshots_saved\": " << p.snapshots_saved()
    << ", \"snapshot_entry_bytes\": " << p.snapshot_entry_bytes() << "}";
  return j.str();
}

// The counters' growth from `before` to `after` (the gauges are left out).
std::string PrefixCacheDeltaJson(const v1::PrefixCacheInfo& before,
                                 const v1::PrefixCacheInfo& after) {
  std::ostringstream j;
  j << "{\"lookups\": " << after.lookups() - before.lookups()
    << ", \"hits\": " << after.hits() - before.hits()
    << ", \"lookup_tokens\": " << after.lookup_tokens() - before.lookup_tokens()
    << ", \"cached_tokens\": " << after.cached_tokens() - before.cached_tokens()
    << ", \"evicted_blocks\": " << after.evicted_blocks() - before.evicted_blocks()
    << ", \"evicted_snapshots\": " << after.evicted_snapshots() - before.evicted_snapshots()
    << ", \"snapshots_saved\": " << after.snapshots_saved() - before.snapshots_saved() << "}";
  return j.str();
}

int Main(int argc, char** argv) {
  Config c;
  if (const std::string err = ParseFlags(argc, argv, c); !err.empty()) {
    if (err == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "serve_loadgen: %s\n%s", err.c_str(), kUsage);
    return 2;
  }

  ServeProcess server;
  std::string address = c.server;
  if (address.empty()) {
    signal(SIGINT, OnSignal);
    signal(SIGTERM, OnSignal);
    signal(SIGHUP, OnSignal);
    std::fprintf(stderr, "serve_loadgen: starting %s serve --port 0 %s\n", c.tandem.c_str(),
                 c.serve_args.c_str());
    if (const std::string err = server.Start(c); !err.empty()) {
      std::fprintf(stderr, "serve_loadgen: %s\n", err.c_str());
      return 1;
    }
    address = server.address();
  }
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    std::fprintf(stderr, "serve_loadgen: cannot connect to %s within 30 s\n", address.c_str());
    return 1;
  }
  auto stub = v1::Tandem::NewStub(channel);
  std::string error;
  const auto info = ModelInfo(*stub, error);
  if (!info) {
    std::fprintf(stderr, "serve_loadgen: %s\n", error.c_str());
    return 1;
  }
  const int64_t vocab = info->vocab_size();
  if (vocab < 1) {
    std::fprintf(stderr, "serve_loadgen: the server reports vocab_size %lld\n",
                 static_cast<long long>(vocab));
    return 1;
  }
  if (info->limits().max_new_tokens() > 0 &&
      c.max_new_tokens.hi > info->limits().max_new_tokens()) {
    std::fprintf(stderr, "serve_loadgen: --max-new-tokens %lld is above the server's limit %d\n",
                 static_cast<long long>(c.max_new_tokens.hi), info->limits().max_new_tokens());
    return 2;
  }
  if (info->limits().max_context() > 0 &&
      c.shared_prefix + c.prompt_len.hi + c.max_new_tokens.hi > info->limits().max_context()) {
    std::fprintf(stderr,
                 "serve_loadgen: --shared-prefix %lld + --prompt-len %lld + --max-new-tokens %lld "
                 "is above the server's context limit %lld\n",
                 static_cast<long long>(c.shared_prefix), static_cast<long long>(c.prompt_len.hi),
                 static_cast<long long>(c.max_new_tokens.hi),
                 static_cast<long long>(info->limits().max_context()));
    return 2;
  }

  // The workload, drawn before the run: the shared prefix (if any), then the warmup requests,
  // then the measured ones. Without --shared-prefix the draws are those of earlier versions.
  std::mt19937_64 rng(c.seed);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> prefix(static_cast<size_t>(c.shared_prefix));
  for (int32_t& t : prefix) t = id(rng);
  std::vector<Work> work(static_cast<size_t>(c.warmup + c.requests));
  for (Work& w : work) {
    std::uniform_int_distribution<int64_t> plen(c.prompt_len.lo, c.prompt_len.hi);
    std::uniform_int_distribution<int64_t> nlen(c.max_new_tokens.lo, c.max_new_tokens.hi);
    w.prompt = prefix;
    w.prompt.resize(prefix.size() + static_cast<size_t>(plen(rng)));
    for (size_t k = prefix.size(); k < w.prompt.size(); ++k) w.prompt[k] = id(rng);
    w.max_new_tokens = static_cast<int32_t>(nlen(rng));
  }
  std::vector<double> arrivals;  // open loop: seconds after the start
  if (c.rate > 0) {
    std::exponential_distribution<double> gap(c.rate);
    double t = 0;
    for (int64_t i = 0; i < c.requests; ++i) {
      arrivals.push_back(t);
      t += gap(rng);
    }
  }

  for (int64_t i = 0; i < c.warmup; ++i) {
    const Outcome o = RunOne(*stub, work[static_cast<size_t>(i)], c.timeout_s, Clock::now());
    if (o.code != grpc::StatusCode::OK) {
      std::fprintf(stderr, "serve_loadgen: warmup request failed: %s: %s\n", CodeName(o.code),
                   o.error.c_str());
      return 1;
    }
  }
  std::string ignored;
  const auto before = ModelInfo(*stub, ignored);

  // The machine may be shared: record how busy it was before the measured run.
  std::string loadavg;
  {
    std::ifstream in("/proc/loadavg");
    std::getline(in, loadavg);
  }
  std::vector<Outcome> outcomes(static_cast<size_t>(c.requests));
  const auto t0 = Clock::now();
  if (c.concurrency > 0) {
    std::atomic<int64_t> next{0};
    std::vector<std::thread> clients;
    for (int64_t k = 0; k < std::min(c.concurrency, c.requests); ++k) {
      clients.emplace_back([&] {
        for (int64_t i = next++; i < c.requests; i = next++) {
          outcomes[static_cast<size_t>(i)] =
              RunOne(*stub, work[static_cast<size_t>(c.warmup + i)], c.timeout_s, t0);
        }
      });
    }
    for (auto& t : clients) t.join();
  } else {
    std::vector<std::thread> senders;
    for (int64_t i = 0; i < c.requests; ++i) {
      std::this_thread::sleep_until(
          t0 + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double>(arrivals[static_cast<size_t>(i)])));
      senders.emplace_back([&, i] {
        outcomes[static_cast<size_t>(i)] =
            RunOne(*stub, work[static_cast<size_t>(c.warmup + i)], c.timeout_s, t0);
      });
    }
    for (auto& t : senders) t.join();
  }
  const double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto after = ModelInfo(*stub, ignored);

  std::vector<double> ttft, itl, e2e, tpot, server_ttft, server_queue;
  std::map<std::string, int64_t> errors;
  std::map<std::string, std::string> first_error;
  int64_t ok = 0, generated = 0, prompt_tokens = 0, short_outputs = 0;
  int64_t cached_tokens = 0, cache_hits = 0;
  std::vector<double> cached_per_request;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const Outcome& o = outcomes[i];
    generated += o.generated;
    if (o.code != grpc::StatusCode::OK) {
      ++errors[CodeName(o.code)];
      first_error.emplace(CodeName(o.code), o.error);
      continue;
    }
    ++ok;
    prompt_tokens += static_cast<int64_t>(work[static_cast<size_t>(c.warmup) + i].prompt.size());
    cached_tokens += o.cached_tokens;
    if (o.cached_tokens > 0) ++cache_hits;
    cached_per_request.push_back(static_cast<double>(o.cached_tokens));
    if (o.generated != o.expected) ++short_outputs;
    if (o.ttft_ms >= 0) ttft.push_back(o.ttft_ms);
    e2e.push_back(o.e2e_ms);
    itl.insert(itl.end(), o.itl_ms.begin(), o.itl_ms.end());
    if (o.generated > 1) {
      tpot.push_back((o.e2e_ms - o.ttft_ms) / static_cast<double>(o.generated - 1));
    }
    if (o.server_first_token_us >= 0) server_ttft.push_back(o.server_first_token_us / 1000.0);
    if (o.server_queue_us >= 0) server_queue.push_back(o.server_queue_us / 1000.0);
  }
  const Summary s_ttft = Summarize(ttft), s_itl = Summarize(itl), s_e2e = Summarize(e2e),
                s_tpot = Summarize(tpot), s_sttft = Summarize(server_ttft),
                s_squeue = Summarize(server_queue), s_cached = Summarize(cached_per_request);
  const double tokens_per_s = static_cast<double>(generated) / wall_s;
  const double requests_per_s = static_cast<double>(ok) / wall_s;
  const double prompt_tokens_per_s = static_cast<double>(prompt_tokens) / wall_s;
  const double cached_share =
      prompt_tokens > 0 ? static_cast<double>(cached_tokens) / static_cast<double>(prompt_tokens)
                        : 0.0;
  int64_t steps = -1, preemptions = -1;
  if (before && after) {
    steps = after->ledger().steps() - before->ledger().steps();
    preemptions = after->ledger().preemptions() - before->ledger().preemptions();
  }

  const std::string mode = c.concurrency > 0
                               ? "closed loop, concurrency " + std::to_string(c.concurrency)
                               : "open loop, Poisson " + Num(c.rate) + " requests/s";
  std::printf(
      "serve_loadgen: %s, %lld requests, prompt %lld:%lld (+ %lld shared), new tokens %lld:%lld\n",
      mode.c_str(), static_cast<long long>(c.requests), static_cast<long long>(c.prompt_len.lo),
      static_cast<long long>(c.prompt_len.hi), static_cast<long long>(c.shared_prefix),
      static_cast<long long>(c.max_new_tokens.lo), static_cast<long long>(c.max_new_tokens.hi));
  std::printf("  server %s: model %s, tp=%d pp=%d, backend %s\n", address.c_str(),
              info->model().c_str(), info->tp(), info->pp(), info->backend().c_str());
  std::printf("  wall %.2f s, %lld ok, %lld failed; %.1f generated tokens/s, %.2f requests/s\n",
              wall_s, static_cast<long long>(ok), static_cast<long long>(c.requests - ok),
              tokens_per_s, requests_per_s);
  std::printf("  %lld prompt tokens (%.1f/s), %lld of them cached (%.1f%%) in %lld requests\n",
              static_cast<long long>(prompt_tokens), prompt_tokens_per_s,
              static_cast<long long>(cached_tokens), 100.0 * cached_share,
              static_cast<long long>(cache_hits));
  if (after && after->has_prefix_cache()) {
    const v1::PrefixCacheInfo& pc = after->prefix_cache();
    std::printf(
        "  server prefix cache %s: %lld hits of %lld lookups, %lld cached tokens, %lld/%lld "
        "snapshots used, %lld evicted snapshots, %lld evicted blocks (totals since start)\n",
        pc.enabled() ? "on" : "off", static_cast<long long>(pc.hits()),
        static_cast<long long>(pc.lookups()), static_cast<long long>(pc.cached_tokens()),
        static_cast<long long>(pc.used_snapshots()), static_cast<long long>(pc.num_snapshots()),
        static_cast<long long>(pc.evicted_snapshots()),
        static_cast<long long>(pc.evicted_blocks()));
  }
  if (steps > 0) {
    std::printf("  %lld steps (%.1f generated tokens/step), %lld preemptions\n",
                static_cast<long long>(steps), static_cast<double>(generated) / steps,
                static_cast<long long>(preemptions));
  }
  std::printf("  %-10s %10s %10s %10s %10s %10s\n", "ms", "mean", "p50", "p90", "p99", "max");
  auto row = [](const char* name, const Summary& s) {
    std::printf("  %-10s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, s.mean, s.p50, s.p90, s.p99,
                s.max);
  };
  row("TTFT", s_ttft);
  row("ITL", s_itl);
  row("TPOT", s_tpot);
  row("e2e", s_e2e);
  for (const auto& [code, n] : errors) {
    std::printf("  error %s x%lld, e.g. %s\n", code.c_str(), static_cast<long long>(n),
                first_error[code].c_str());
  }
  if (short_outputs > 0) {
    std::printf("  %lld OK requests generated fewer or more tokens than max_new_tokens\n",
                static_cast<long long>(short_outputs));
  }

  if (!c.out.empty()) {
    std::ostringstream j;
    j << "{\n";
    j << "  \"benchmark\": \"serve_loadgen\",\n";
    j << "  \"label\": " << JsonString(c.label) << ",\n";
    j << "  \"date\": " << JsonString(UtcNow()) << ",\n";
    utsname u{};
    uname(&u);
    j << "  \"machine\": {\"cpu_model\": " << JsonString(tandem::bench::CpuModel())
      << ", \"nproc\": " << std::thread::hardware_concurrency()
      << ", \"kernel\": " << JsonString(std::string(u.sysname) + " " + u.release)
      << ", \"loadavg_before\": " << JsonString(loadavg) << "},\n";
    j << "  \"config\": {\"server\": " << JsonString(c.server.empty() ? server.command() : c.server)
      << ", \"mode\": " << JsonString(c.concurrency > 0 ? "closed" : "open")
      << ", \"concurrency\": " << c.concurrency << ", \"rate\": " << Num(c.rate)
      << ", \"requests\": " << c.requests << ", \"warmup\": " << c.warmup << ", \"prompt_len\": ["
      << c.prompt_len.lo << ", " << c.prompt_len.hi << "], \"shared_prefix\": " << c.shared_prefix
      << ", \"max_new_tokens\": [" << c.max_new_tokens.lo << ", " << c.max_new_tokens.hi
      << "], \"seed\": " << c.seed << ", \"ignore_eos\": true, \"sampling\": \"greedy\"},\n";
    j << "  \"server\": {\"model\": " << JsonString(info->model()) << ", \"tp\": " << info->tp()
      << ", \"pp\": " << info->pp() << ", \"backend\": " << JsonString(info->backend())
      << ", \"vocab_size\": " << info->vocab_size()
      << ", \"num_hidden_layers\": " << info->num_hidden_layers()
      << ", \"num_slots\": " << info->capacities().num_slots()
      << ", \"num_blocks\": " << info->capacities().num_blocks()
      << ", \"block_size\": " << info->capacities().block_size()
      << ", \"max_tokens_per_step\": " << info->limits().max_tokens_per_step()
      << ", \"max_context\": " << info->limits().max_context() << "},\n";
    // The server's prefix-cache counters (totals since it started) at the end, and what the
    // measured requests added to them; null when the server does not report a prefix cache.
    j << "  \"prefix_cache\": ";
    if (after && after->has_prefix_cache()) {
      j << "{\"end\": " << PrefixCacheJson(after->prefix_cache()) << ",\n    \"measured\": ";
      if (before && before->has_prefix_cache()) {
        j << PrefixCacheDeltaJson(before->prefix_cache(), after->prefix_cache());
      } else {
        j << "null";
      }
      j << "},\n";
    } else {
      j << "null,\n";
    }
    j << "  \"results\": {\n";
    j << "    \"wall_s\": " << Num(wall_s) << ",\n";
    j << "    \"ok\": " << ok << ",\n";
    j << "    \"errors\": {";
    bool first = true;
    for (const auto& [code, n] : errors) {
      j << (first ? "" : ", ") << JsonString(code) << ": " << n;
      first = false;
    }
    j << "},\n";
    j << "    \"generated_tokens\": " << generated << ",\n";
    j << "    \"prompt_tokens\": " << prompt_tokens << ",\n";
    j << "    \"cached_tokens\": " << cached_tokens << ",\n";
    j << "    \"cached_share\": " << Num(cached_share) << ",\n";
    j << "    \"requests_with_cached_tokens\": " << cache_hits << ",\n";
    j << "    \"cached_tokens_per_request\": " << JsonSummary(s_cached) << ",\n";
    j << "    \"prompt_tokens_per_s\": " << Num(prompt_tokens_per_s) << ",\n";
    j << "    \"wrong_length_outputs\": " << short_outputs << ",\n";
    j << "    \"generated_tokens_per_s\": " << Num(tokens_per_s) << ",\n";
    j << "    \"requests_per_s\": " << Num(requests_per_s) << ",\n";
    j << "    \"server_steps\": " << steps << ",\n";
    j << "    \"server_preemptions\": " << preemptions << ",\n";
    j << "    \"ttft_ms\": " << JsonSummary(s_ttft) << ",\n";
    j << "    \"itl_ms\": " << JsonSummary(s_itl) << ",\n";
    j << "    \"tpot_ms\": " << JsonSummary(s_tpot) << ",\n";
    j << "    \"e2e_ms\": " << JsonSummary(s_e2e) << ",\n";
    j << "    \"server_first_token_ms\": " << JsonSummary(s_sttft) << ",\n";
    j << "    \"server_queue_ms\": " << JsonSummary(s_squeue) << "\n";
    j << "  }\n}\n";
    std::ofstream out(c.out);
    out << j.str();
    out.close();
    if (!out) {
      std::fprintf(stderr, "serve_loadgen: cannot write %s\n", c.out.c_str());
      return 1;
    }
    std::printf("  wrote %s\n", c.out.c_str());
  }
  return errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
