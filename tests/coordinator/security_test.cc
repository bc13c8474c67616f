// Security end to end (docs/serving.md, "Security"; DESIGN.md §8), against real `tandem serve`
// and `tandem worker` processes of the tiny model (tp = pp = 1, so each start takes ~1 s):
// - every method of tandem.v1 and tandem.worker.v1 (enumerated from the descriptors), and
//   reflection, refused without credentials;
// - a step injected without the secret (or by another coordinator) changes no output;
// - a second coordinator is refused while the first one's lease lives, and takes over after the
//   first is SIGKILLed;
// - TLS and mTLS on the public API and mTLS on the worker control plane, with certificates made
//   here by the openssl CLI; plaintext to a TLS port fails;
// - Abort only of the caller's own requests; API keys reloaded on SIGHUP; priority per key;
//   `tandem generate --api-key --tls-ca` reaches a secured server.
#include <dirent.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tandem/worker/v1/worker.grpc.pb.h"
#include "tests/coordinator/serve_process.h"

namespace tandem::testing {
namespace {

namespace v1 = ::tandem::v1;
namespace wv1 = ::tandem::worker::v1;
using Clock = std::chrono::system_clock;
using Metadata = std::map<std::string, std::string>;

constexpr char kSecret[] = "security-test-group-secret-5f1d3c9a";
constexpr char kKeyA[] = "key-a-0123456789abcdef";
constexpr char kKeyB[] = "key-b-0123456789abcdef";
constexpr char kKeyC[] = "key-c-0123456789abcdef";

const Env& SecretEnv() {
  static const Env env = {{"TANDEM_GROUP_SECRET", kSecret}};
  return env;
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/security_" + std::to_string(getpid()) + "_" + name;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

// One call of `method` with a raw (empty) request through a GenericStub; for a streaming method
// this sends one message and half-closes, which is enough to learn whether the server admits it.
::grpc::Status RawCall(const std::shared_ptr<::grpc::Channel>& channel, const std::string& method,
                       const Metadata& metadata) {
  ::grpc::GenericStub stub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  ::grpc::Slice empty("", 0);
  ::grpc::ByteBuffer request(&empty, 1), response;
  std::promise<::grpc::Status> done;
  stub.UnaryCall(&ctx, method, ::grpc::StubOptions(), &request, &response,
                 [&done](::grpc::Status s) { done.set_value(s); });
  return done.get_future().get();
}

// "/package.Service/Method" of every method of the service `name` in `file`.
std::vector<std::string> MethodsOf(const google::protobuf::FileDescriptor* file,
                                   const std::string& name) {
  const google::protobuf::ServiceDescriptor* service = file->FindServiceByName(name);
  EXPECT_NE(service, nullptr) << name;
  std::vector<std::string> out;
  for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
    out.push_back("/" + service->full_name() + "/" + service->method(i)->name());
  }
  return out;
}

v1::GenerateRequest Greedy(const std::vector<int32_t>& prompt, int max_new) {
  v1::GenerateRequest r;
  for (int32_t id : prompt) r.mutable_tokens()->add_ids(id);
  r.mutable_stopping()->set_max_new_tokens(max_new);
  r.mutable_stopping()->set_ignore_eos(true);
  r.set_return_token_ids(true);
  return r;
}

struct Generated {
  ::grpc::Status status;
  std::vector<int32_t> ids;
};

Generated Generate(v1::Tandem::Stub& stub, const v1::GenerateRequest& req,
                   const std::string& key = "") {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(30));
  if (!key.empty()) ctx.AddMetadata("authorization", std::string("Bearer ") + key);
  v1::GenerateResponse resp;
  Generated g;
  g.status = stub.Generate(&ctx, req, &resp);
  g.ids.assign(resp.token_ids().begin(), resp.token_ids().end());
  return g;
}

std::vector<std::vector<int32_t>> GreedyTokens(const std::string& address) {
  auto stub =
      v1::Tandem::NewStub(::grpc::CreateChannel(address, ::grpc::InsecureChannelCredentials()));
  std::vector<std::vector<int32_t>> out;
  for (const auto& prompt : std::vector<std::vector<int32_t>>{{11, 12, 13}, {400, 5, 77, 1000}}) {
    Generated g = Generate(*stub, Greedy(prompt, 8));
    EXPECT_TRUE(g.status.ok()) << g.status.error_message();
    EXPECT_EQ(g.ids.size(), 8u);
    out.push_back(g.ids);
  }
  return out;
}

const std::vector<std::string> kOneRank = {"--tp", "1", "--pp", "1"};

std::vector<std::string> Args(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// ---- Credentials -------------------------------------------------------------------------------

TEST(SecurityTest, EveryPublicMethodAndReflectionRefusedWithoutAKey) {
  const std::string keys = TempPath("keys_public");
  WriteFile(keys, std::string("# test keys\n") + kKeyA + " name=a\n");
  Serve serve(Args(kOneRank, {"--api-keys-file", keys}));
  ASSERT_NE(serve.port(), 0) << serve.output();
  auto channel = ::grpc::CreateChannel(serve.address(), ::grpc::InsecureChannelCredentials());
  std::vector<std::string> methods = MethodsOf(v1::GenerateRequest::descriptor()->file(), "Tandem");
  ASSERT_GE(methods.size(), 6u);
  methods.push_back("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  int accepted = 0;
  for (const std::string& m : methods) {
    for (const Metadata& md :
         {Metadata{}, Metadata{{"authorization", "Bearer wrong-key-0123456789"}},
          Metadata{{"authorization", kKeyA}}}) {  // no "Bearer "
      const ::grpc::Status s = RawCall(channel, m, md);
      EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAUTHENTICATED)
          << m << ": " << s.error_message();
      if (s.error_code() != ::grpc::StatusCode::UNAUTHENTICATED) ++accepted;
      EXPECT_EQ(s.error_message().find(kKeyA), std::string::npos);
    }
  }
  EXPECT_EQ(accepted, 0);
  // Each refused generation left one access-log line saying why, without the key it was sent.
  const std::string log = serve.output();
  const auto count = [&log](const std::string& what) {
    int n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("request refused method=Generate "), 3) << log;
  EXPECT_EQ(count("request refused method=GenerateStream "), 3) << log;
  EXPECT_EQ(count(" status=UNAUTHENTICATED "), 6) << log;
  EXPECT_EQ(log.find("wrong-key-0123456789"), std::string::npos) << log;
  EXPECT_EQ(log.find(kKeyA), std::string::npos) << log;
  // The same calls with the key get through (so the refusals above were about the key): an
  // empty GetModelInfo request succeeds, reflection answers.
  const Metadata good = {{"authorization", std::string("Bearer ") + kKeyA}};
  EXPECT_TRUE(RawCall(channel, "/tandem.v1.Tandem/GetModelInfo", good).ok());
  EXPECT_TRUE(
      RawCall(channel, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", good)
          .ok());
  // Health stays open.
  EXPECT_TRUE(RawCall(channel, "/grpc.health.v1.Health/Check", {}).ok());
}

TEST(SecurityTest, EveryWorkerMethodRefusedWithoutTheGroupSecret) {
  Worker worker({}, SecretEnv());
  ASSERT_NE(worker.port(), 0) << worker.output();
  auto channel = ::grpc::CreateChannel(worker.address(), ::grpc::InsecureChannelCredentials());
  const std::vector<std::string> methods =
      MethodsOf(wv1::StepRequest::descriptor()->file(), "Worker");
  ASSERT_GE(methods.size(), 9u);
  int accepted = 0;
  for (const std::string& m : methods) {
    for (const Metadata& md : {Metadata{},
                               Metadata{{"x-tandem-group-secret", "not-the-secret-0123456789"},
                                        {"x-tandem-coordinator", "intruder"},
                                        {"x-tandem-epoch", "1"}},
                               Metadata{{"x-tandem-group-secret", std::string(kSecret) + "x"}}}) {
      const ::grpc::Status s = RawCall(channel, m, md);
      EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAUTHENTICATED)
          << m << ": " << s.error_message();
      if (s.error_code() != ::grpc::StatusCode::UNAUTHENTICATED) ++accepted;
    }
  }
  EXPECT_EQ(accepted, 0);
  // With the secret, Info answers; Shutdown without owning the worker is refused.
  EXPECT_TRUE(
      RawCall(channel, "/tandem.worker.v1.Worker/Info", {{"x-tandem-group-secret", kSecret}}).ok());
  EXPECT_EQ(
      RawCall(channel, "/tandem.worker.v1.Worker/Shutdown", {{"x-tandem-group-secret", kSecret}})
          .error_code(),
      ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(RawCall(channel, "/grpc.health.v1.Health/Check", {}).ok());
  // A coordinator with another secret cannot even start, and says why.
  Serve wrong(Args(kOneRank, {"--workers", worker.address(), "--start-timeout", "5"}),
              {{"TANDEM_GROUP_SECRET", "another-secret-0123456789"}});
  EXPECT_EQ(wrong.port(), 0);
  EXPECT_NE(wrong.output().find("worker rank 0 at " + worker.address() +
                                ": missing or wrong group secret"),
            std::string::npos)
      << wrong.output();
  EXPECT_EQ(wrong.output().find("another-secret"), std::string::npos);  // never logged
  // A worker without a secret does not start, and says why.
  Worker bare({}, {{"TANDEM_GROUP_SECRET", ""}});
  EXPECT_EQ(bare.port(), 0);
  EXPECT_NE(bare.output().find("no group secret"), std::string::npos) << bare.output();
}

// Pids of the live processes whose parent is `parent` (threads are not listed in /proc).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const int p = std::atoi(e->d_name);
    if (p <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(p) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(p);
  }
  closedir(d);
  return out;
}

TEST(SecurityTest, LocalWorkersGetAFreshSecretOutsideTheirCommandLine) {
  Serve serve(Args(kOneRank, {}), {{"TANDEM_GROUP_SECRET", ""}});
  ASSERT_NE(serve.port(), 0) << serve.output();
  const std::vector<pid_t> workers = ChildrenOf(serve.pid());
  ASSERT_EQ(workers.size(), 1u);
  std::string environ = ReadAll("/proc/" + std::to_string(workers[0]) + "/environ");
  std::string cmdline = ReadAll("/proc/" + std::to_string(workers[0]) + "/cmdline");
  std::smatch m;
  const std::string flat = std::regex_replace(environ, std::regex(std::string(1, '\0')), "\n");
  ASSERT_TRUE(std::regex_search(flat, m, std::regex("TANDEM_GROUP_SECRET=([0-9a-f]{64})\n")));
  const std::string secret = m[1];
  EXPECT_EQ(cmdline.find(secret), std::string::npos);
  EXPECT_EQ(cmdline.find("secret"), std::string::npos);
  EXPECT_EQ(serve.output().find(secret), std::string::npos);
}

TEST(SecurityTest, InjectedStepsChangeNoOutput) {
  Worker worker({"--lease-ttl-ms", "1000"}, SecretEnv());
  ASSERT_NE(worker.port(), 0) << worker.output();
  Serve serve(Args(kOneRank, {"--workers", worker.address(), "--slots", "8"}), SecretEnv());
  ASSERT_NE(serve.port(), 0) << serve.output();
  auto api = v1::Tandem::NewStub(
      ::grpc::CreateChannel(serve.address(), ::grpc::InsecureChannelCredentials()));
  const v1::GenerateRequest victim = Greedy({11, 12, 13}, 400);
  const Generated alone = Generate(*api, victim);
  ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();

  auto stub = wv1::Worker::NewStub(
      ::grpc::CreateChannel(worker.address(), ::grpc::InsecureChannelCredentials()));
  // A plan that, if executed, restarts every slot's state from one token (the victim's slot
  // included, whichever it is), writing KV blocks far from the ones the victim uses.
  wv1::StepRequest plan;
  plan.set_step_id(1u << 30);
  for (int slot = 0; slot < 8; ++slot) {
    wv1::SequenceStep* s = plan.add_sequences();
    s->set_slot(slot);
    s->add_block_table(900 + slot);
    s->add_token_ids(100 + slot);
    s->set_logits(wv1::LOGITS_NONE);
  }
  wv1::InfoResponse info;
  {
    ::grpc::ClientContext ctx;
    ctx.AddMetadata("x-tandem-group-secret", kSecret);
    ASSERT_TRUE(stub->Info(&ctx, {}, &info).ok());
    EXPECT_FALSE(info.owner().empty());
    EXPECT_GE(info.epoch(), 1u);
  }
  const std::vector<Metadata> intruders = {
      {},                                                      // no secret
      {{"x-tandem-group-secret", "guess-guess-guess-guess"}},  // a wrong one
      {{"x-tandem-group-secret", kSecret},                     // the secret, not the owner
       {"x-tandem-coordinator", "intruder"},
       {"x-tandem-epoch", std::to_string(info.epoch())}},
      {{"x-tandem-group-secret", kSecret},  // the owner's id at a stale epoch
       {"x-tandem-coordinator", info.owner()},
       {"x-tandem-epoch", std::to_string(info.epoch() - 1)}}};

  // The victim runs again while the intruders inject plans as fast as they are answered.
  std::future<Generated> again =
      std::async(std::launch::async, [&] { return Generate(*api, victim); });
  int injected = 0;
  std::vector<int> refused(intruders.size(), 0);
  while (again.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
    for (size_t i = 0; i < intruders.size(); ++i) {
      ::grpc::ClientContext ctx;
      ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
      for (const auto& [k, v] : intruders[i]) ctx.AddMetadata(k, v);
      wv1::StepResponse resp;
      const ::grpc::Status st = stub->Step(&ctx, plan, &resp);
      ++injected;
      const auto expected =
          i < 2 ? ::grpc::StatusCode::UNAUTHENTICATED : ::grpc::StatusCode::FAILED_PRECONDITION;
      if (st.error_code() == expected) ++refused[i];
      EXPECT_EQ(st.error_code(), expected) << i << ": " << st.error_message();
    }
  }
  const Generated during = again.get();
  ASSERT_TRUE(during.status.ok()) << during.status.error_message();
  int total_refused = 0;
  for (int n : refused) total_refused += n;
  std::printf("%d plans injected during a 400-token request, %d refused\n", injected,
              total_refused);
  EXPECT_GT(injected, 4);
  EXPECT_EQ(during.ids, alone.ids);

  // A claim by someone else while the owner's lease lives is refused, naming the owner.
  for (size_t i = 0; i < intruders.size(); ++i) {
    ::grpc::ClientContext ctx;
    for (const auto& [k, v] : intruders[i]) ctx.AddMetadata(k, v);
    wv1::ClaimRequest claim;
    claim.set_coordinator_id("intruder");
    claim.set_epoch(info.epoch() + 1);
    wv1::ClaimResponse resp;
    const ::grpc::Status st = stub->Claim(&ctx, claim, &resp);
    EXPECT_FALSE(st.ok()) << i;
    if (i >= 2) {
      EXPECT_NE(st.error_message().find(info.owner()), std::string::npos) << st.error_message();
    }
  }
}

// ---- Ownership ---------------------------------------------------------------------------------

TEST(SecurityTest, SecondCoordinatorRefusedUntilTheFirstIsKilled) {
  Worker worker({"--lease-ttl-ms", "1000"}, SecretEnv());
  ASSERT_NE(worker.port(), 0) << worker.output();
  const auto args = Args(kOneRank, {"--workers", worker.address()});
  auto first = std::make_unique<Serve>(args, SecretEnv());
  ASSERT_NE(first->port(), 0) << first->output();
  const auto tokens = GreedyTokens(first->address());

  // Well past the lease TTL: the first coordinator's heartbeat keeps its lease alive.
  Serve second(Args(args, {"--start-timeout", "3"}), SecretEnv());
  EXPECT_EQ(second.port(), 0);
  EXPECT_NE(second.exit_status(), 0);
  EXPECT_NE(second.output().find("owned by coordinator"), std::string::npos) << second.output();
  EXPECT_EQ(GreedyTokens(first->address()), tokens);  // the first one was not disturbed

  first->Kill();  // SIGKILL: its lease is not renewed any more
  const auto killed = std::chrono::steady_clock::now();
  Serve third(args, SecretEnv());
  ASSERT_NE(third.port(), 0) << third.output();
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::printf("took over %.2f s after the SIGKILL (lease TTL 1 s)\n", took);
  EXPECT_LT(took, 20.0);  // TTL + start-up, with a generous margin for a loaded machine
  EXPECT_EQ(GreedyTokens(third.address()), tokens);
}

// ---- TLS ---------------------------------------------------------------------------------------

// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made by openssl.
struct Certificates {
  std::string dir, ca, server_cert, server_key, client_cert, client_key;
  static const Certificates& Get() {
    static const Certificates c = [] {
      Certificates c;
      c.dir = TempPath("pki");
      const std::string d = c.dir;
      const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
      const std::string script =
          "set -e; rm -rf " + d + "; mkdir -p " + d + "; cd " + d + "; openssl req -x509 " + ec +
          " -keyout ca.key -out ca.pem -days 2 -subj /CN=tandem-test-ca"
          "; openssl req " +
          ec +
          " -keyout server.key -out server.csr -subj /CN=localhost"
          "; printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext"
          "; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
          " -out server.pem -days 2 -extfile san.ext"
          "; openssl req " +
          ec +
          " -keyout client.key -out client.csr -subj /CN=coordinator"
          "; openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
          " -out client.pem -days 2) > " +
          d + ".log 2>&1";
      EXPECT_EQ(std::system(("(" + script).c_str()), 0) << ReadAll(d + ".log");
      c.ca = d + "/ca.pem";
      c.server_cert = d + "/server.pem";
      c.server_key = d + "/server.key";
      c.client_cert = d + "/client.pem";
      c.client_key = d + "/client.key";
      return c;
    }();
    return c;
  }
};

std::string Pem(const std::string& path) { return ReadAll(path); }

std::shared_ptr<::grpc::Channel> TlsChannel(const std::string& address, bool client_cert) {
  const Certificates& c = Certificates::Get();
  ::grpc::SslCredentialsOptions o;
  o.pem_root_certs = Pem(c.ca);
  if (client_cert) {
    o.pem_cert_chain = Pem(c.client_cert);
    o.pem_private_key = Pem(c.client_key);
  }
  return ::grpc::CreateChannel(address, ::grpc::SslCredentials(o));
}

::grpc::Status ModelInfo(const std::shared_ptr<::grpc::Channel>& channel, const std::string& key) {
  auto stub = v1::Tandem::NewStub(channel);
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(5));
  if (!key.empty()) ctx.AddMetadata("authorization", std::string("Bearer ") + key);
  v1::GetModelInfoResponse info;
  return stub->GetModelInfo(&ctx, {}, &info);
}

// Runs a command line; its exit status and output.
std::pair<int, std::string> Shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[512];
  while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int rc = p == nullptr ? -1 : pclose(p);
  return {rc, out};
}

TEST(SecurityTest, TlsAndMutualTlsOnThePublicApi) {
  const Certificates& c = Certificates::Get();
  const std::string keys = TempPath("keys_tls");
  WriteFile(keys, std::string(kKeyA) + "\n");
  {
    Serve serve(Args(kOneRank, {"--tls-cert", c.server_cert, "--tls-key", c.server_key,
                                "--api-keys-file", keys}));
    ASSERT_NE(serve.port(), 0) << serve.output();
    EXPECT_TRUE(ModelInfo(TlsChannel(serve.address(), false), kKeyA).ok());
    EXPECT_EQ(ModelInfo(TlsChannel(serve.address(), false), "").error_code(),
              ::grpc::StatusCode::UNAUTHENTICATED);
    const ::grpc::Status plain = ModelInfo(
        ::grpc::CreateChannel(serve.address(), ::grpc::InsecureChannelCredentials()), kKeyA);
    EXPECT_FALSE(plain.ok());
    // The CLI client reaches it with --tls-ca and the key (flag or TANDEM_API_KEY).
    const std::string generate = TandemBinary() + " generate --server " + serve.address() +
                                 " --tokens 11,12,13 --max-new-tokens 3 --ids --tls-ca " + c.ca;
    auto [rc, out] = Shell(generate + " --api-key " + kKeyA);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("ids: "), std::string::npos) << out;
    std::tie(rc, out) = Shell("TANDEM_API_KEY=" + std::string(kKeyA) + " " + generate);
    EXPECT_EQ(rc, 0) << out;
    std::tie(rc, out) = Shell(generate);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("API key"), std::string::npos) << out;
  }
  {
    Serve serve(Args(kOneRank, {"--tls-cert", c.server_cert, "--tls-key", c.server_key,
                                "--tls-client-ca", c.ca}));
    ASSERT_NE(serve.port(), 0) << serve.output();
    EXPECT_TRUE(ModelInfo(TlsChannel(serve.address(), true), "").ok());
    EXPECT_FALSE(ModelInfo(TlsChannel(serve.address(), false), "").ok());
    EXPECT_FALSE(
        ModelInfo(::grpc::CreateChannel(serve.address(), ::grpc::InsecureChannelCredentials()), "")
            .ok());
  }
}

TEST(SecurityTest, MutualTlsOnTheWorkerControlPlane) {
  const Certificates& c = Certificates::Get();
  Worker worker({"--tls-cert", c.server_cert, "--tls-key", c.server_key, "--tls-ca", c.ca},
                SecretEnv());
  ASSERT_NE(worker.port(), 0) << worker.output();
  // Without a client certificate (or in plaintext) nothing gets through, not even Info.
  for (const auto& channel :
       {TlsChannel(worker.address(), false),
        ::grpc::CreateChannel(worker.address(), ::grpc::InsecureChannelCredentials())}) {
    auto stub = wv1::Worker::NewStub(channel);
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(5));
    ctx.AddMetadata("x-tandem-group-secret", kSecret);
    wv1::InfoResponse info;
    EXPECT_EQ(stub->Info(&ctx, {}, &info).error_code(), ::grpc::StatusCode::UNAVAILABLE);
  }
  Serve serve(Args(kOneRank, {"--workers", worker.address(), "--worker-tls-cert", c.client_cert,
                              "--worker-tls-key", c.client_key, "--worker-tls-ca", c.ca}),
              SecretEnv());
  ASSERT_NE(serve.port(), 0) << serve.output();
  GreedyTokens(serve.address());
}

// ---- API keys: Abort, priority, reload
// -----------------------------------------------------------

TEST(SecurityTest, AbortOnlyOwnRequestsPriorityPerKeyAndKeysReloadOnSighup) {
  const std::string keys = TempPath("keys_abort");
  WriteFile(keys, std::string(kKeyA) + " name=a\n" + kKeyB + " name=b allow_priority\n");
  Serve serve(Args(kOneRank, {"--api-keys-file", keys}));
  ASSERT_NE(serve.port(), 0) << serve.output();
  auto stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(serve.address(), ::grpc::InsecureChannelCredentials()));

  // A long stream of key A; its server-assigned id is random.
  ::grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
  stream_ctx.AddMetadata("authorization", std::string("Bearer ") + kKeyA);
  auto reader = stub->GenerateStream(&stream_ctx, Greedy({1, 2, 3}, 1000));
  v1::GenerateStreamResponse msg;
  ASSERT_TRUE(reader->Read(&msg)) << reader->Finish().error_message();
  const std::string id = msg.request_id();
  EXPECT_TRUE(std::regex_match(id, std::regex("req-[0-9a-f]{32}"))) << id;

  const auto abort = [&](const std::string& key, const std::string& request_id) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("authorization", std::string("Bearer ") + key);
    v1::AbortRequest req;
    req.add_request_ids(request_id);
    v1::AbortResponse resp;
    EXPECT_TRUE(stub->Abort(&ctx, req, &resp).ok());
    return resp;
  };
  // Key B: exactly like an unknown id.
  v1::AbortResponse other = abort(kKeyB, id);
  EXPECT_EQ(other.aborted_size(), 0);
  ASSERT_EQ(other.not_found_size(), 1);
  EXPECT_EQ(other.not_found(0), id);
  v1::AbortResponse unknown = abort(kKeyB, "req-00000000000000000000000000000000");
  EXPECT_EQ(unknown.not_found_size(), 1);
  // Key A: its own request ends CANCELLED.
  v1::AbortResponse own = abort(kKeyA, id);
  ASSERT_EQ(own.aborted_size(), 1);
  EXPECT_EQ(own.aborted(0), id);
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), ::grpc::StatusCode::CANCELLED);

  // Priority: only a key with allow_priority may raise it.
  v1::GenerateRequest urgent = Greedy({5, 6}, 2);
  urgent.set_priority(3);
  const Generated refused = Generate(*stub, urgent, kKeyA);
  EXPECT_EQ(refused.status.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.status.error_message().find("priority"), std::string::npos);
  EXPECT_TRUE(Generate(*stub, urgent, kKeyB).status.ok());
  urgent.set_priority(-1);
  EXPECT_TRUE(Generate(*stub, urgent, kKeyA).status.ok());

  // Reload: A removed, C added.
  WriteFile(keys, std::string(kKeyB) + " allow_priority\n" + kKeyC + "\n");
  ASSERT_EQ(kill(serve.pid(), SIGHUP), 0);
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; ++i) {
    reloaded = Generate(*stub, Greedy({7}, 1), kKeyC).status.ok();
    if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(reloaded) << serve.output();
  EXPECT_EQ(Generate(*stub, Greedy({7}, 1), kKeyA).status.error_code(),
            ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Generate(*stub, Greedy({7}, 1), kKeyB).status.ok());
  // A broken file keeps the keys in force.
  WriteFile(keys, "short\n");
  ASSERT_EQ(kill(serve.pid(), SIGHUP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(Generate(*stub, Greedy({7}, 1), kKeyC).status.ok());
  EXPECT_NE(serve.output().find("keeping the previous API keys"), std::string::npos)
      << serve.output();
}

}  // namespace
}  // namespace tandem::testing
