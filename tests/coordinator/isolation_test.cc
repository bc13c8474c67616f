// Issue 11, per-request isolation against a real `tandem serve` (tp=2 x pp=2 worker processes of
// the f32 tiny model): extreme values of every GenerateRequest field (enumerated from the
// descriptors) fail only their own request while a bystander stream finishes with the right
// tokens; top_k = 2^31-1 costs what top_k = 0 costs; invalid UTF-8 in every string field of every
// method is INVALID_ARGUMENT naming the field; every listener is on loopback; a busy port and bad
// flags fail at start-up naming what is wrong.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/reflection.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/impl/codegen/sync_stream.h"
#include "tests/coordinator/serve_fixture.h"

namespace tandem::coordinator {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;

class IsolationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ =
        new ServeProcess({"--model", F32Model(), "--slots", "16", "--blocks", "256", "--block-size",
                          "8", "--max-tokens-per-step", "64", "--max-new-tokens", "64"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_->port(), 0) << "tandem serve did not start";
    channel_ = ::grpc::CreateChannel(server_->address(), ::grpc::InsecureChannelCredentials());
    stub_ = v1::Tandem::NewStub(channel_);
  }
  static ServeProcess* server_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<v1::Tandem::Stub> stub_;
};
ServeProcess* IsolationTest::server_ = nullptr;

// ---- Extreme values ---------------------------------------------------------------------------

struct Extreme {
  std::string field;  // path from the request root ("sampling.top_k")
  std::string value;  // for messages
  v1::GenerateRequest request;
};

v1::GenerateRequest BaseRequest() {
  v1::GenerateRequest r = Tokens({5, 6, 7}, 4);
  r.mutable_sampling()->set_temperature(1.0f);  // so that every sampling field takes part
  r.mutable_sampling()->set_seed(3);
  r.set_return_token_ids(true);
  return r;
}

template <typename T>
std::vector<T> IntExtremes() {
  std::vector<T> v = {std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), 0, 1};
  if (std::numeric_limits<T>::is_signed) v.push_back(static_cast<T>(-1));
  return v;
}

std::vector<float> FloatExtremes() {
  const float inf = std::numeric_limits<float>::infinity();
  return {-inf,
          -FLT_MAX,
          -1.0f,
          -std::numeric_limits<float>::denorm_min(),
          0.0f,
          std::numeric_limits<float>::denorm_min(),
          FLT_MIN,
          1e-7f,
          0.5f,
          1.0f,
          2.0f,
          10.0f,
          FLT_MAX,
          inf,
          std::numeric_limits<float>::quiet_NaN()};
}

// Sets `field` of `m` (appending one element for a repeated field, replacing what the base had).
template <typename T, typename Set, typename Add>
void ForEachValue(const std::vector<T>& values, const std::string& path, Message* root,
                  const std::vector<const FieldDescriptor*>& chain, Set set, Add add,
                  std::vector<Extreme>* out) {
  for (const T& value : values) {
    v1::GenerateRequest r;
    r.CopyFrom(*root);
    Message* m = &r;
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
      m = m->GetReflection()->MutableMessage(m, chain[i]);
    }
    const FieldDescriptor* f = chain.back();
    if (f->is_repeated()) {
      m->GetReflection()->ClearField(m, f);
      add(m, f, value);
    } else {
      set(m, f, value);
    }
    std::ostringstream text;
    text << value;
    out->push_back({path, text.str(), r});
  }
}

void CollectExtremes(const Descriptor& type, const std::string& prefix,
                     std::vector<const FieldDescriptor*> chain, const v1::GenerateRequest& base,
                     std::vector<Extreme>* out) {
  v1::GenerateRequest root = base;
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor* f = type.field(i);
    const std::string path = prefix + f->name();
    auto c = chain;
    c.push_back(f);
    using R = google::protobuf::Reflection;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        CollectExtremes(*f->message_type(), path + ".", c, base, out);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        ForEachValue<int32_t>(
            IntExtremes<int32_t>(), path, &root, c,
            [](Message* m, const FieldDescriptor* f, int32_t v) {
              m->GetReflection()->SetInt32(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, int32_t v) {
              m->GetReflection()->AddInt32(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        ForEachValue<int64_t>(
            IntExtremes<int64_t>(), path, &root, c,
            [](Message* m, const FieldDescriptor* f, int64_t v) {
              m->GetReflection()->SetInt64(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, int64_t v) {
              m->GetReflection()->AddInt64(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        ForEachValue<uint32_t>(
            IntExtremes<uint32_t>(), path, &root, c,
            [](Message* m, const FieldDescriptor* f, uint32_t v) {
              m->GetReflection()->SetUInt32(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, uint32_t v) {
              m->GetReflection()->AddUInt32(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        ForEachValue<uint64_t>(
            IntExtremes<uint64_t>(), path, &root, c,
            [](Message* m, const FieldDescriptor* f, uint64_t v) {
              m->GetReflection()->SetUInt64(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, uint64_t v) {
              m->GetReflection()->AddUInt64(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        ForEachValue<float>(
            FloatExtremes(), path, &root, c,
            [](Message* m, const FieldDescriptor* f, float v) {
              m->GetReflection()->SetFloat(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, float v) {
              m->GetReflection()->AddFloat(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        ForEachValue<double>(
            {-HUGE_VAL, -DBL_MAX, 0.0, DBL_MAX, HUGE_VAL, std::nan("")}, path, &root, c,
            [](Message* m, const FieldDescriptor* f, double v) {
              m->GetReflection()->SetDouble(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, double v) {
              m->GetReflection()->AddDouble(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        ForEachValue<bool>(
            {false, true}, path, &root, c,
            [](Message* m, const FieldDescriptor* f, bool v) {
              m->GetReflection()->SetBool(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, bool v) {
              m->GetReflection()->AddBool(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        ForEachValue<int>(
            {0, 1, INT32_MAX, -1}, path, &root, c,
            [](Message* m, const FieldDescriptor* f, int v) {
              m->GetReflection()->SetEnumValue(m, f, v);
            },
            [](Message* m, const FieldDescriptor* f, int v) {
              m->GetReflection()->AddEnumValue(m, f, v);
            },
            out);
        break;
      case FieldDescriptor::CPPTYPE_STRING: {
        // Within and just past the limits of the server (GetModelInfo's Limits): the longest
        // strings, the most of them, and empty ones.
        const std::vector<std::string> values = {"", "a", std::string(256, 'x'),
                                                 std::string(257, 'y'), std::string(4096, 'z')};
        for (const std::string& v : values) {
          v1::GenerateRequest r = base;
          Message* m = &r;
          for (size_t k = 0; k + 1 < c.size(); ++k) {
            m = m->GetReflection()->MutableMessage(m, c[k]);
          }
          if (f->is_repeated()) {
            for (int n : {1, 16, 17}) {
              v1::GenerateRequest rr = r;
              Message* mm = &rr;
              for (size_t k = 0; k + 1 < c.size(); ++k) {
                mm = mm->GetReflection()->MutableMessage(mm, c[k]);
              }
              for (int j = 0; j < n; ++j) mm->GetReflection()->AddString(mm, f, v);
              out->push_back(
                  {path, std::to_string(n) + " x " + std::to_string(v.size()) + " bytes", rr});
            }
          } else {
            m->GetReflection()->SetString(m, f, v);
            out->push_back({path, std::to_string(v.size()) + " bytes", r});
          }
        }
        break;
      }
    }
  }
}

// True when `message` starts with the path of a field of GenerateRequest ("stopping.stop[3]: ...").
bool NamesAField(const std::string& message, const std::vector<Extreme>& extremes) {
  for (const Extreme& e : extremes) {
    if (message.rfind(e.field, 0) == 0) return true;
  }
  return false;
}

TEST_F(IsolationTest, ExtremeValuesOfEveryFieldFailOnlyThemselves) {
  const int64_t vocab = Info(*stub_).vocab_size();
  std::vector<Extreme> extremes;
  CollectExtremes(*v1::GenerateRequest::descriptor(), "", {}, BaseRequest(), &extremes);
  ASSERT_GT(extremes.size(), 100u);

  // The bystander: greedy, run alone first for the reference tokens.
  const v1::GenerateRequest bystander = Tokens({11, 12, 13, 14}, 60);
  const Result alone = Stream(*stub_, bystander);
  ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
  ASSERT_EQ(alone.ids.size(), 60u);

  ::grpc::ClientContext bctx;
  bctx.set_deadline(Clock::now() + std::chrono::seconds(120));
  auto reader = stub_->GenerateStream(&bctx, bystander);
  Result during;
  v1::GenerateStreamResponse msg;
  ASSERT_TRUE(reader->Read(&msg));  // in flight from here on
  during.ids.assign(msg.token_ids().begin(), msg.token_ids().end());
  std::thread bystander_reader([&] {
    while (reader->Read(&msg)) {
      during.ids.insert(during.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
    }
    during.status = reader->Finish();
  });

  std::mutex mu;
  std::map<std::string, int> served, refused;
  std::vector<std::string> failures;
  std::atomic<size_t> next{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&] {
      for (size_t i = next++; i < extremes.size(); i = next++) {
        const Extreme& e = extremes[i];
        ::grpc::ClientContext ctx;
        ctx.set_deadline(Clock::now() + std::chrono::seconds(60));
        v1::GenerateResponse response;
        const ::grpc::Status s = stub_->Generate(&ctx, e.request, &response);
        std::lock_guard<std::mutex> lock(mu);
        const std::string what = e.field + " = " + e.value;
        if (s.ok()) {
          ++served[e.field];
          for (int32_t id : response.token_ids()) {
            if (id < 0 || id >= vocab) failures.push_back(what + ": token " + std::to_string(id));
          }
        } else if (s.error_code() == ::grpc::StatusCode::INVALID_ARGUMENT &&
                   s.error_message().rfind(e.field, 0) == 0) {
          ++refused[e.field];
        } else if (s.error_code() == ::grpc::StatusCode::INVALID_ARGUMENT &&
                   NamesAField(s.error_message(), extremes)) {
          ++refused[e.field];  // a rule between fields (e.g. prompt + max_new_tokens > context)
        } else if (s.error_code() == ::grpc::StatusCode::DEADLINE_EXCEEDED &&
                   e.field == "time_limit_ms") {
          ++served[e.field];  // a 1 ms limit ends the request by its own rule
        } else if (s.error_code() == ::grpc::StatusCode::INVALID_ARGUMENT &&
                   e.field == "request_id" &&
                   s.error_message().find("already in flight") != std::string::npos) {
          ++refused[e.field];  // two clients sent the same id at once
        } else {
          failures.push_back(what + ": " + std::to_string(s.error_code()) + " " +
                             s.error_message());
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  bystander_reader.join();
  for (const std::string& f : failures) ADD_FAILURE() << f;
  EXPECT_TRUE(during.status.ok()) << during.status.error_message();
  EXPECT_EQ(during.ids, alone.ids);
  // Each field had values served and (for the bounded ones) values refused with its name.
  for (const char* f : {"sampling.top_k", "sampling.temperature", "sampling.top_p",
                        "sampling.min_p", "stopping.max_new_tokens", "logprobs.top_logprobs"}) {
    EXPECT_GT(served[f], 0) << f;
  }
  for (const char* f : {"sampling.temperature", "sampling.top_p", "stopping.stop",
                        "stopping.max_new_tokens", "logprobs.top_logprobs", "tokens.ids"}) {
    EXPECT_GT(refused[f], 0) << f;
  }
  std::printf("%zu extreme requests: ", extremes.size());
  int total_served = 0, total_refused = 0;
  for (const auto& [f, n] : served) total_served += n;
  for (const auto& [f, n] : refused) total_refused += n;
  std::printf("%d served, %d refused naming the field\n", total_served, total_refused);

  EXPECT_EQ(HealthStatus(channel_), 1);  // SERVING
  const auto info = Info(*stub_);
  for (const char* code : {"UNAVAILABLE", "INTERNAL", "UNKNOWN"}) {
    EXPECT_EQ(info.ledger().terminated_by_code().count(code), 0u) << code;
  }
  const Result after = Stream(*stub_, bystander);
  EXPECT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.ids, alone.ids);
  ExpectPoolsFull(*stub_);
}

// ---- top_k cost -------------------------------------------------------------------------------

TEST_F(IsolationTest, TopKAtInt32MaxCostsWhatNoTopKCosts) {
  // Decode-heavy: a short prompt and 32 sampled tokens; the best of a few runs of each.
  const auto run = [&](int32_t top_k) {
    v1::GenerateRequest r = Tokens({3, 4}, 32);
    r.mutable_sampling()->set_temperature(1.0f);
    r.mutable_sampling()->set_top_k(top_k);
    r.mutable_sampling()->set_seed(9);
    const auto start = std::chrono::steady_clock::now();
    const Result res = Stream(*stub_, r);
    EXPECT_TRUE(res.status.ok()) << top_k << ": " << res.status.error_message();
    EXPECT_EQ(res.ids.size(), 32u);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double off = 1e9, huge = 1e9, twenty_million = 1e9;
  for (int i = 0; i < 3; ++i) {
    off = std::min(off, run(0));
    huge = std::min(huge, run(std::numeric_limits<int32_t>::max()));
    twenty_million = std::min(twenty_million, run(20000000));
  }
  std::printf("32 decode steps: top_k=0 %.3f s, top_k=2^31-1 %.3f s, top_k=2e7 %.3f s\n", off, huge,
              twenty_million);
  // 2x, plus slack for a loaded 2-core machine.
  EXPECT_LT(huge, 2 * off + 0.25);
  EXPECT_LT(twenty_million, 2 * off + 0.25);
}

// ---- Invalid UTF-8 ----------------------------------------------------------------------------

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// The encoding of `payload` as field `f` (length-delimited).
std::string LengthDelimited(const FieldDescriptor& f, const std::string& payload) {
  std::string out;
  AppendVarint((static_cast<uint64_t>(f.number()) << 3) | 2, &out);
  AppendVarint(payload.size(), &out);
  return out + payload;
}

struct BadString {
  std::string path;
  std::string bytes;  // a request whose string at `path` is not UTF-8
};

// Every string field reachable from `type` (not following recursion), each set to invalid UTF-8
// on top of `base` (protobuf merges a later occurrence: a singular field takes the new value, a
// repeated one gets one more element, index `count in base`).
void CollectBadStrings(const Descriptor& type, const Message* base, const std::string& prefix,
                       std::set<const Descriptor*> seen,
                       const std::function<std::string(const std::string&)>& wrap,
                       std::vector<BadString>* out) {
  seen.insert(&type);
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor* f = type.field(i);
    std::string path = prefix + f->name();
    if (f->type() == FieldDescriptor::TYPE_STRING) {
      int index = 0;
      if (f->is_repeated() && base != nullptr) {
        index = base->GetReflection()->FieldSize(*base, f);
      }
      if (f->is_repeated()) path += "[" + std::to_string(index) + "]";
      for (const std::string bad : {std::string("\xff"), std::string("ok\xc3("),
                                    std::string("\xed\xa0\x80"), std::string("\xc0\xaf")}) {
        out->push_back({path, wrap(LengthDelimited(*f, bad))});
      }
    } else if (f->type() == FieldDescriptor::TYPE_MESSAGE && !f->is_map() &&
               seen.count(f->message_type()) == 0) {
      const Message* sub = nullptr;
      if (base != nullptr && !f->is_repeated() && base->GetReflection()->HasField(*base, f)) {
        sub = &base->GetReflection()->GetMessage(*base, f);
      }
      CollectBadStrings(
          *f->message_type(), sub, path + (f->is_repeated() ? "[0]." : "."), seen,
          [wrap, f](const std::string& inner) { return wrap(LengthDelimited(*f, inner)); }, out);
    }
  }
}

::grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  ::grpc::Slice slice(bytes.data(), bytes.size());
  return ::grpc::ByteBuffer(&slice, 1);
}

// Calls `method` with raw request bytes (unary or server streaming).
::grpc::Status CallRaw(const std::shared_ptr<::grpc::Channel>& channel,
                       const google::protobuf::MethodDescriptor& method, const std::string& bytes) {
  const std::string name = "/" + method.service()->full_name() + "/" + method.name();
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(30));
  const ::grpc::ByteBuffer request = ToBuffer(bytes);
  if (method.server_streaming()) {
    ::grpc::internal::RpcMethod rpc(name.c_str(), ::grpc::internal::RpcMethod::SERVER_STREAMING,
                                    channel);
    std::unique_ptr<::grpc::ClientReader<::grpc::ByteBuffer>> reader(
        ::grpc::internal::ClientReaderFactory<::grpc::ByteBuffer>::Create(channel.get(), rpc, &ctx,
                                                                          request));
    ::grpc::ByteBuffer msg;
    while (reader->Read(&msg)) {
    }
    return reader->Finish();
  }
  ::grpc::internal::RpcMethod rpc(name.c_str(), ::grpc::internal::RpcMethod::NORMAL_RPC, channel);
  ::grpc::ByteBuffer response;
  return ::grpc::internal::BlockingUnaryCall<::grpc::ByteBuffer, ::grpc::ByteBuffer>(
      channel.get(), rpc, &ctx, request, &response);
}

TEST_F(IsolationTest, InvalidUtf8InEveryStringFieldIsInvalidArgumentNamingIt) {
  const auto* service = v1::GenerateRequest::descriptor()->file()->FindServiceByName("Tandem");
  ASSERT_NE(service, nullptr);
  int checked = 0;
  for (int m = 0; m < service->method_count(); ++m) {
    const google::protobuf::MethodDescriptor& method = *service->method(m);
    // A valid request of this method: GenerateRequest needs a prompt; the others are valid empty.
    std::string base_bytes;
    std::unique_ptr<Message> base;
    if (method.input_type() == v1::GenerateRequest::descriptor()) {
      base = std::make_unique<v1::GenerateRequest>(Tokens({1, 2}, 2));
      base_bytes = base->SerializeAsString();
    }
    // The base alone is served.
    const ::grpc::Status ok = CallRaw(channel_, method, base_bytes);
    EXPECT_TRUE(ok.ok()) << method.name() << ": " << ok.error_message();
    std::vector<BadString> bad;
    CollectBadStrings(
        *method.input_type(), base.get(), "", {}, [](const std::string& s) { return s; }, &bad);
    for (const BadString& b : bad) {
      const ::grpc::Status s = CallRaw(channel_, method, base_bytes + b.bytes);
      EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT)
          << method.name() << " " << b.path << ": " << s.error_message();
      EXPECT_EQ(s.error_message(), b.path + ": is not valid UTF-8") << method.name();
      ++checked;
    }
  }
  // text, stop, request_id (Generate and GenerateStream), Abort's ids, Tokenize's text.
  EXPECT_GE(checked, 4 * 8);
  // Bytes that are no message at all: INVALID_ARGUMENT too.
  const ::grpc::Status junk =
      CallRaw(channel_, *service->FindMethodByName("Generate"), std::string("\x0a\xff\xff", 3));
  EXPECT_EQ(junk.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << junk.error_message();
  EXPECT_EQ(HealthStatus(channel_), 1);
}

// ---- Binding ----------------------------------------------------------------------------------

// Inodes of the sockets `pid` holds.
std::set<std::string> SocketInodes(pid_t pid) {
  std::set<std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char target[256] = {0};
    const std::string link = dir + "/" + e->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    const std::string t(target, n);
    if (t.rfind("socket:[", 0) == 0) out.insert(t.substr(8, t.size() - 9));
  }
  closedir(d);
  return out;
}

struct Listener {
  std::string address;  // hex, as in /proc/net/tcp{,6}
  bool v6 = false;
  std::string inode;
};

std::vector<Listener> Listeners() {
  std::vector<Listener> out;
  for (const bool v6 : {false, true}) {
    std::ifstream in(v6 ? "/proc/net/tcp6" : "/proc/net/tcp");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      words >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A") continue;  // LISTEN
      out.push_back({local.substr(0, local.find(':')), v6, inode});
    }
  }
  return out;
}

bool IsLoopback(const Listener& l) {
  if (!l.v6) return l.address == "0100007F";  // 127.0.0.1, little-endian
  // ::1, or ::ffff:127.0.0.1
  return l.address == "00000000000000000000000001000000" ||
         l.address == "0000000000000000FFFF00000100007F";
}

TEST_F(IsolationTest, EveryListenerIsOnTheConfiguredLoopbackAddress) {
  std::vector<pid_t> pids = server_->Children();
  ASSERT_EQ(pids.size(), 4u);  // tp=2 x pp=2 workers
  pids.push_back(server_->pid());
  std::set<std::string> ours;
  for (pid_t p : pids) {
    for (const std::string& inode : SocketInodes(p)) ours.insert(inode);
  }
  int listening = 0;
  for (const Listener& l : Listeners()) {
    if (ours.count(l.inode) == 0) continue;
    ++listening;
    EXPECT_TRUE(IsLoopback(l)) << "a listener on " << (l.v6 ? "tcp6 " : "tcp ") << l.address;
  }
  // The coordinator, its rendezvous store, 4 workers' gRPC, Gloo and UCX.
  EXPECT_GE(listening, 6);
  std::printf("%d listening sockets of the server and its workers, all on loopback\n", listening);
}

// Runs the tandem binary with `args` (at most `seconds`), returning its exit status and output.
std::pair<int, std::string> RunTandem(const std::string& args, int seconds) {
  const std::string out = ::testing::TempDir() + "/isolation_run_" + std::to_string(getpid());
  const std::string cmd = "XDG_CACHE_HOME=" + std::string(TANDEM_BINARY_DIR) +
                          "/test-cache timeout -s KILL " + std::to_string(seconds) + " " +
                          std::string(TANDEM_BINARY_DIR) + "/bin/tandem " + args + " > " + out +
                          " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(out.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

TEST_F(IsolationTest, ASecondServeOnABusyPortFailsAtStartUp) {
  const auto [code, output] = RunTandem(
      "serve --model " + F32Model() + " --tp 1 --pp 1 --port " + std::to_string(server_->port()),
      60);
  EXPECT_NE(code, 0) << output;
  EXPECT_NE(output.find("cannot listen on 127.0.0.1:" + std::to_string(server_->port())),
            std::string::npos)
      << output;
  EXPECT_EQ(output.find("listening on"), std::string::npos) << output;
  EXPECT_EQ(HealthStatus(channel_), 1);
}

TEST(ServeFlagsTest, BadFlagsFailAtStartUpNamingTheFlag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"serve --max-tokens-per-step 0", "--max-tokens-per-step 0"},
      {"serve --slots 0", "--slots 0"},
      {"serve --slots 99999999999", "--slots 99999999999"},
      {"serve --blocks 0", "--blocks 0"},
      {"serve --block-size -1", "--block-size -1"},
      {"serve --max-queued-requests 0", "--max-queued-requests 0"},
      {"serve --max-queued-prompt-tokens 0", "--max-queued-prompt-tokens 0"},
      {"serve --max-new-tokens 0", "--max-new-tokens 0"},
      {"serve --max-new-tokens 3000000000", "--max-new-tokens 3000000000"},
      {"serve --max-receive-bytes 10", "--max-receive-bytes 10"},
      {"serve --max-receive-bytes 8589934592", "--max-receive-bytes 8589934592"},
      {"serve --micro-batches 0", "--micro-batches 0"},
      {"serve --start-timeout 0", "--start-timeout 0"},
      {"serve --port 70000", "--port 70000"},
      {"serve --port -1", "--port -1"},
      {"serve --port abc", "--port"},
      {"serve --tp 0", "--tp 0"},
      {"serve --pp -2", "--pp -2"},
      {"serve --tp 16 --pp 16", "--tp 16 x --pp 16"},
      {"serve --collective nccl", "--collective 'nccl'"},
      {"serve --host=", "--host"},
      {"serve --model=", "--model"},
      {"serve --rendezvous-host 127.0.0.1", "--rendezvous-host"},
      {"worker --listen nonsense", "--listen 'nonsense'"},
      {"worker --listen 127.0.0.1:99999", "--listen '127.0.0.1:99999'"},
      {"worker --parent-pid -5", "--parent-pid -5"},
  };
  for (const auto& [args, expected] : cases) {
    const auto [code2, output2] = RunTandem(args, 20);
    EXPECT_NE(code2, 0) << args << ": " << output2;
    EXPECT_NE(output2.find(expected), std::string::npos) << args << ": " << output2;
    EXPECT_EQ(output2.find("listening on"), std::string::npos) << args;
  }
}

TEST(ServeFlagsTest, ABlockPoolTooSmallForAnyRequestFailsAtStartUp) {
  const auto [code, output] = RunTandem(
      "serve --model " + F32Model() + " --tp 1 --pp 1 --port 0 --blocks 1 --block-size 1", 60);
  EXPECT_NE(code, 0) << output;
  EXPECT_NE(output.find("--blocks 1 x --block-size 1"), std::string::npos) << output;
  EXPECT_EQ(output.find("listening on"), std::string::npos) << output;
}

}  // namespace
}  // namespace tandem::coordinator
