// Prefix caching through real `tandem serve` groups (issue 15): on tp=1/pp=1, tp=2/pp=2 and tp=4,
// with an f32 checkpoint, every request's tokens with --prefix-cache on equal --prefix-cache off
// (and log-probabilities agree to f32 rounding: a reused prefix was computed in other chunks),
// for prompts sharing nothing, one block, many blocks and the whole prompt, with chunked prefill
// (a small step budget) and under preemption (a small block pool). Usage.cached_tokens is exactly
// the reused prefix. A pool of 2 snapshots under a long concurrent run evicts and never changes
// an output or stalls admission.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tests/coordinator/serve_fixture.h"

namespace tandem::coordinator {
namespace {

constexpr int kBlock = 16;            // --block-size (the default)
constexpr double kLogprobTol = 1e-4;  // f32: the same math in other chunks (docs/numerics.md)

struct Answer {
  ::grpc::Status status;
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  v1::Usage usage;
};

// Greedy for even `kind`, seeded sampling with a repetition penalty (the last stage's token
// history must come back with a restored snapshot) for odd.
v1::GenerateRequest Request(const std::vector<int32_t>& prompt, int max_new, int kind) {
  v1::GenerateRequest r = Tokens(prompt, max_new);
  r.set_return_token_ids(true);
  r.set_skip_text(true);
  r.mutable_logprobs()->set_logprobs(true);
  if (kind % 2 == 1) {
    r.mutable_sampling()->set_temperature(0.9f);
    r.mutable_sampling()->set_seed(1000 + kind);
    r.mutable_sampling()->set_repetition_penalty(1.3f);
  }
  return r;
}

Answer Generate(v1::Tandem::Stub& stub, const v1::GenerateRequest& req) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(Clock::now() + std::chrono::seconds(120));
  v1::GenerateResponse resp;
  Answer a;
  a.status = stub.Generate(&ctx, req, &resp);
  a.ids.assign(resp.token_ids().begin(), resp.token_ids().end());
  for (const auto& lp : resp.logprobs()) a.logprobs.push_back(lp.logprob());
  a.usage = resp.usage();
  return a;
}

// Sends every request at once (one thread each), in order of `reqs`' index.
std::vector<Answer> Concurrently(v1::Tandem::Stub& stub,
                                 const std::vector<v1::GenerateRequest>& reqs, int threads) {
  std::vector<Answer> out(reqs.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < reqs.size(); i = next++) out[i] = Generate(stub, reqs[i]);
    });
  }
  for (auto& t : pool) t.join();
  return out;
}

void ExpectSame(const Answer& off, const Answer& on, const std::string& what) {
  ASSERT_TRUE(off.status.ok()) << what << ": " << off.status.error_message();
  ASSERT_TRUE(on.status.ok()) << what << ": " << on.status.error_message();
  EXPECT_EQ(on.ids, off.ids) << what;
  ASSERT_EQ(on.logprobs.size(), off.logprobs.size()) << what;
  for (size_t i = 0; i < on.logprobs.size(); ++i) {
    EXPECT_NEAR(on.logprobs[i], off.logprobs[i], kLogprobTol) << what << " token " << i;
  }
  EXPECT_EQ(on.usage.prompt_tokens(), off.usage.prompt_tokens()) << what;
  EXPECT_EQ(off.usage.cached_tokens(), 0) << what;
}

std::vector<int32_t> Random(std::mt19937& rng, int n) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng() % 4000));
  return t;
}

std::vector<int32_t> Cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Layout {
  int tp, pp;
};

class PrefixCacheServeTest : public ::testing::TestWithParam<Layout> {};

TEST_P(PrefixCacheServeTest, CacheOnEqualsCacheOffOnThisLayout) {
  const Layout layout = GetParam();
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  // A small step budget (chunked prefill) and a block pool the concurrent phase overflows
  // (preemption, and evictions of cached blocks).
  auto args = [&](const char* cache) {
    return std::vector<std::string>{"--model",
                                    F32Model(),
                                    "--tp",
                                    std::to_string(layout.tp),
                                    "--pp",
                                    std::to_string(layout.pp),
                                    "--max-tokens-per-step",
                                    "40",
                                    "--blocks",
                                    "24",
                                    "--slots",
                                    "8",
                                    "--prefix-cache",
                                    cache};
  };
  ServeProcess off(args("off"));
  ServeProcess on(args("on"));
  ASSERT_GT(off.port(), 0) << off.output();
  ASSERT_GT(on.port(), 0) << on.output();
  auto off_stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(off.address(), ::grpc::InsecureChannelCredentials()));
  auto on_stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(on.address(), ::grpc::InsecureChannelCredentials()));
  const v1::GetModelInfoResponse info = Info(*on_stub);
  ASSERT_TRUE(info.prefix_cache().enabled());
  EXPECT_GT(info.prefix_cache().num_snapshots(), 0);
  EXPECT_GT(info.prefix_cache().snapshot_entry_bytes(), 0);
  EXPECT_FALSE(Info(*off_stub).prefix_cache().enabled());

  // One request at a time, so each hit is known in advance.
  const std::vector<int32_t> many = Random(rng, 5 * kBlock);  // 5 blocks
  const std::vector<int32_t> one = Random(rng, kBlock);       // 1 block
  struct Case {
    std::string what;
    std::vector<int32_t> prompt;
    int32_t cached;  // expected Usage.cached_tokens
  };
  const std::vector<int32_t> first = Cat(many, Random(rng, 10));
  const std::vector<int32_t> aligned = Random(rng, 6 * kBlock);
  const std::vector<Case> cases = {
      {"no shared prefix", first, 0},
      // Saved at 80 (the first prompt's last block boundary): many blocks reused.
      {"5 shared blocks", Cat(many, Random(rng, 7)), 5 * kBlock},
      {"one block, first", Cat(one, Random(rng, 20)), 0},
      // Shares only the first block with the previous one: no snapshot there yet, so it saves one
      // at 16 (where it leaves the cached blocks) ...
      {"one block, branch", Cat(one, Random(rng, 20)), 0},
      // ... which the next one reuses.
      {"1 shared block", Cat(one, Random(rng, 5)), kBlock},
      {"the whole prompt again", first, 5 * kBlock},
      // A prompt of exactly 6 blocks, twice: the second reuses all but its last block.
      {"block-aligned prompt", aligned, 0},
      {"block-aligned prompt again", aligned, 5 * kBlock},
      {"shorter than a block", Random(rng, 9), 0},
  };
  std::vector<v1::GenerateRequest> reqs;
  for (size_t i = 0; i < cases.size(); ++i) {
    reqs.push_back(Request(cases[i].prompt, 6 + static_cast<int>(i % 3) * 5, static_cast<int>(i)));
    const Answer a = Generate(*off_stub, reqs.back());
    const Answer b = Generate(*on_stub, reqs.back());
    ExpectSame(a, b, cases[i].what);
    EXPECT_EQ(b.usage.cached_tokens(), cases[i].cached) << cases[i].what;
  }
  v1::PrefixCacheInfo pc = Info(*on_stub).prefix_cache();
  EXPECT_EQ(pc.hits(), 4);
  EXPECT_EQ(pc.cached_tokens(), 3 * 5 * kBlock + kBlock);
  EXPECT_GT(pc.snapshots_saved(), 0);

  // Every request again and 6 more from the same prefixes, all at once: batched chunks, hits
  // from the tree built above, preemption in a pool of 24 blocks.
  for (int i = 0; i < 6; ++i) {
    const auto& base = i % 3 == 0 ? many : i % 3 == 1 ? one : first;
    reqs.push_back(Request(Cat(base, Random(rng, 3 + i)), 20, i));
  }
  // Long generations, so the running sequences outgrow the pool whatever the cache shares.
  for (auto& r : reqs) r.mutable_stopping()->set_max_new_tokens(60);
  const std::vector<Answer> a = Concurrently(*off_stub, reqs, 8);
  const std::vector<Answer> b = Concurrently(*on_stub, reqs, 8);
  int32_t preempted = 0, cached = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    ExpectSame(a[i], b[i], "concurrent request " + std::to_string(i));
    EXPECT_EQ(b[i].usage.cached_tokens() % kBlock, 0);
    EXPECT_LT(b[i].usage.cached_tokens(), b[i].usage.prompt_tokens());
    preempted += b[i].usage.preemptions();
    cached += b[i].usage.cached_tokens();
  }
  EXPECT_GT(cached, 0);
  EXPECT_GT(preempted, 0) << "the pool of 24 blocks was expected to force preemptions";
  pc = Info(*on_stub).prefix_cache();
  EXPECT_GT(pc.hits(), 4);
  ExpectPoolsFull(*on_stub);  // cached blocks count as free once no sequence uses them
}

INSTANTIATE_TEST_SUITE_P(Layouts, PrefixCacheServeTest,
                         ::testing::Values(Layout{1, 1}, Layout{2, 2}, Layout{4, 1}),
                         [](const ::testing::TestParamInfo<Layout>& p) {
                           return "tp" + std::to_string(p.param.tp) + "_pp" +
                                  std::to_string(p.param.pp);
                         });

// A snapshot pool of 2 entries and a long concurrent run over 6 prefixes: snapshots and blocks
// are evicted again and again, every output equals the cache-off server's, and every request
// finishes (admission never waits for a snapshot).
TEST(PrefixCacheEvictionTest, TwoSnapshotsUnderALongRunNeverChangeOutputs) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::vector<std::string> common = {
      "--model", F32Model(), "--tp", "1", "--pp", "1", "--max-tokens-per-step",
      "64",      "--blocks", "48"};
  // One snapshot entry's bytes, from a server with the default budget.
  int64_t entry = 0;
  {
    std::vector<std::string> a = common;
    a.insert(a.end(), {"--prefix-cache", "on"});
    ServeProcess probe(a);
    ASSERT_GT(probe.port(), 0) << probe.output();
    auto stub = v1::Tandem::NewStub(
        ::grpc::CreateChannel(probe.address(), ::grpc::InsecureChannelCredentials()));
    entry = Info(*stub).prefix_cache().snapshot_entry_bytes();
  }
  ASSERT_GT(entry, 0);
  std::vector<std::string> on_args = common, off_args = common;
  on_args.insert(on_args.end(), {"--snapshot-pool-bytes", std::to_string(2 * entry + entry / 2)});
  off_args.insert(off_args.end(), {"--prefix-cache", "off"});
  ServeProcess on(on_args), off(off_args);
  ASSERT_GT(on.port(), 0) << on.output();
  ASSERT_GT(off.port(), 0) << off.output();
  auto on_stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(on.address(), ::grpc::InsecureChannelCredentials()));
  auto off_stub = v1::Tandem::NewStub(
      ::grpc::CreateChannel(off.address(), ::grpc::InsecureChannelCredentials()));
  ASSERT_EQ(Info(*on_stub).prefix_cache().num_snapshots(), 2);

  std::vector<std::vector<int32_t>> prefixes;
  for (int i = 0; i < 6; ++i) prefixes.push_back(Random(rng, kBlock * (1 + i % 4)));
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < 90; ++i) {
    reqs.push_back(Request(Cat(prefixes[rng() % prefixes.size()], Random(rng, 1 + rng() % 20)),
                           4 + static_cast<int>(rng() % 12), i));
  }
  const std::vector<Answer> b = Concurrently(*on_stub, reqs, 6);
  const std::vector<Answer> a = Concurrently(*off_stub, reqs, 6);
  for (size_t i = 0; i < reqs.size(); ++i) ExpectSame(a[i], b[i], "request " + std::to_string(i));
  const v1::PrefixCacheInfo pc = Info(*on_stub).prefix_cache();
  EXPECT_GT(pc.hits(), 0);
  EXPECT_GT(pc.evicted_snapshots(), 0);
  EXPECT_LE(pc.used_snapshots(), 2);
  ExpectPoolsFull(*on_stub);
}

}  // namespace
}  // namespace tandem::coordinator
