// A replica as real processes: a batch mixing prefill chunks and decodes gives each sequence its
// single-process logits on every layout; per-rank weight and state bytes shrink as 1/(tp*pp)
// and 1/tp (measured by the workers: bytes read from the checkpoint and bytes held); a worker
// SIGKILLed during a step fails the launcher within 10 s naming the rank, leaving no process.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cfloat>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "sharding/shard_plan.h"
#include "tandem/worker/v1/worker.grpc.pb.h"
#include "tests/worker/worker_test_util.h"

namespace tandem::worker {
namespace {

namespace pb = ::tandem::worker::v1;

struct SeqPlan {
  int32_t slot;
  std::vector<int32_t> prompt;  // the whole token sequence
};

// Adds tokens [begin, end) of `seq` to the step, asking for all their logits.
void AddChunk(pb::StepRequest* req, const SeqPlan& seq, int64_t begin, int64_t end,
              int64_t block_size) {
  pb::SequenceStep* s = req->add_sequences();
  s->set_slot(seq.slot);
  // Disjoint block ranges per slot: slot k uses blocks [16k, 16k + 16).
  for (int64_t b = 0; b < (end + block_size - 1) / block_size; ++b) {
    s->add_block_table(static_cast<int32_t>(seq.slot * 16 + b));
  }
  s->set_start_pos(begin);
  for (int64_t i = begin; i < end; ++i) s->add_token_ids(seq.prompt[i]);
  s->set_logits(pb::LOGITS_ALL);
  s->set_prompt_len(static_cast<int64_t>(seq.prompt.size()));
}

TEST(ClusterTest, MixedPrefillAndDecodeBatchesMatchOneProcessOnEveryLayout) {
  const std::string dir = TinyModelDir("tiny", core::DType::kF32);
  auto model = model::NemotronHModel::Load(dir, model::ModelOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  const int vocab = static_cast<int>((*model)->config().vocab_size);
  std::vector<SeqPlan> seqs = {{0, RandomPrompt(40, vocab, 1)},
                               {1, RandomPrompt(23, vocab, 2)},
                               {2, RandomPrompt(9, vocab, 3)},
                               {3, RandomPrompt(30, vocab, 4)}};
  std::vector<core::Tensor> want;
  for (const SeqPlan& s : seqs) {
    auto l = model::PromptLogits(**model, s.prompt);
    ASSERT_TRUE(l.ok()) << l.status();
    want.push_back(*l);
  }
  // Steps: {seq, begin, end} chunks; seq 0 and 3 decode one token at a time while others prefill.
  struct Chunk {
    int seq;
    int64_t begin, end;
  };
  const std::vector<std::vector<Chunk>> steps = {
      {{0, 0, 17}, {1, 0, 5}},
      {{0, 17, 18}, {1, 5, 23}, {2, 0, 4}, {3, 0, 28}},
      {{0, 18, 19}, {2, 4, 9}, {3, 28, 29}},
      {{3, 29, 30}, {0, 19, 40}},
  };
  for (auto [tp, pp] : {std::pair{1, 1}, {2, 2}, {4, 3}}) {
    SCOPED_TRACE(absl::StrCat("tp=", tp, " pp=", pp));
    auto cluster = LocalCluster::Start(ClusterOptions(dir, tp, pp));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    const int64_t bs = (*cluster)->infos()[0].capacity().block_size();
    for (const auto& step : steps) {
      pb::StepRequest req;
      for (const Chunk& c : step) AddChunk(&req, seqs[c.seq], c.begin, c.end, bs);
      auto resp = (*cluster)->Step(req);
      ASSERT_TRUE(resp.ok()) << resp.status();
      ASSERT_EQ(resp->results_size(), static_cast<int>(step.size()));
      for (size_t i = 0; i < step.size(); ++i) {
        const Chunk& c = step[i];
        const std::string& got = resp->results(i).all_logits();
        const int64_t n = (c.end - c.begin) * vocab;
        ASSERT_EQ(got.size(), static_cast<size_t>(n) * sizeof(float));
        std::vector<float> g(n);
        std::memcpy(g.data(), got.data(), got.size());
        const float* w = want[c.seq].data<float>() + c.begin * vocab;
        EXPECT_LE(RelMaxErr(w, g.data(), n), 1e-4)
            << "sequence " << c.seq << " positions [" << c.begin << ", " << c.end << ")";
      }
    }
  }
}

TEST(ClusterTest, PerRankWeightAndStateBytesShrinkWithTheLayout) {
  const std::string dir = TinyModelDir("tiny", core::DType::kBF16);
  auto config = core::TinyPreset("tiny");
  ASSERT_TRUE(config.ok());
  auto one = LocalCluster::Start(ClusterOptions(dir, 1, 1));
  ASSERT_TRUE(one.ok()) << one.status();
  const pb::InfoResponse whole = (*one)->infos()[0];
  one->reset();
  const int tp = 2, pp = 2;
  auto cluster = LocalCluster::Start(ClusterOptions(dir, tp, pp));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto plan = sharding::ShardPlan::Create(*config, {tp, pp});
  ASSERT_TRUE(plan.ok());
  int64_t read_sum = 0, replicated = 0;
  for (int r = 0; r < tp * pp; ++r) {
    const pb::InfoResponse& info = (*cluster)->infos()[r];
    const sharding::RankShard& shard = plan->rank(r);
    EXPECT_EQ(info.layout().layer_begin(), shard.layers.begin);
    EXPECT_EQ(info.layout().vocab_begin(), shard.vocab.begin);
    // Measured by the worker: the bytes it read from the mapped checkpoint are exactly its
    // ShardPlan slice (bf16: 2 bytes per element), nothing more.
    EXPECT_EQ(info.checkpoint_bytes_read(), shard.weight_elements() * 2) << "rank " << r;
    read_sum += info.checkpoint_bytes_read();
    for (const auto& t : shard.tensors) {
      if (t.split == sharding::SplitKind::kReplicated) replicated += t.local_elements() * 2;
    }
    std::printf(
        "rank %d: read %lld of %lld checkpoint bytes (%.3f), holds %lld weight bytes, "
        "%lld state bytes\n",
        r, static_cast<long long>(info.checkpoint_bytes_read()),
        static_cast<long long>(whole.checkpoint_bytes_read()),
        static_cast<double>(info.checkpoint_bytes_read()) / whole.checkpoint_bytes_read(),
        static_cast<long long>(info.weight_bytes()), static_cast<long long>(info.state_bytes()));
  }
  // The ranks together read the checkpoint once, plus (tp - 1) extra copies of the norms.
  EXPECT_EQ(read_sum - replicated + replicated / tp, whole.checkpoint_bytes_read());
  // A stage's tp ranks each hold half of what one rank of the same stage holds at tp = 1 (norms
  // aside), and half of its state.
  auto half = LocalCluster::Start(ClusterOptions(dir, 1, pp));
  ASSERT_TRUE(half.ok()) << half.status();
  for (int r = 0; r < tp * pp; ++r) {
    const pb::InfoResponse& info = (*cluster)->infos()[r];
    const pb::InfoResponse& stage = (*half)->infos()[r / tp];
    EXPECT_NEAR(static_cast<double>(info.checkpoint_bytes_read()),
                stage.checkpoint_bytes_read() / 2.0, 0.02 * stage.checkpoint_bytes_read())
        << "rank " << r;
    EXPECT_EQ(info.state_bytes() * tp, stage.state_bytes()) << "rank " << r;
    EXPECT_GT(info.state_bytes(), 0);
  }
}

bool ProcessExists(int pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

TEST(ClusterTest, KilledWorkerFailsTheLauncherNamingTheRankWithinTenSeconds) {
  const std::string dir = TinyModelDir("tiny", core::DType::kF32);
  LocalClusterOptions o = ClusterOptions(dir, 2, 2);
  o.num_blocks = 128;
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::vector<int> pids = (*cluster)->pids();
  const int victim = 3;  // TP rank 1 of the last stage
  const std::vector<int32_t> prompt = RandomPrompt(1000, 4096, 5);
  std::atomic<bool> killed{false};
  std::chrono::steady_clock::time_point kill_time;
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill_time = std::chrono::steady_clock::now();
    kill(pids[victim], SIGKILL);
    killed = true;
  });
  absl::Status failure;
  // Steps back to back (a 1000-token prefill each) until one fails: the kill lands in one.
  for (int i = 0; i < 10000 && failure.ok(); ++i) {
    pb::StepRequest req;
    pb::SequenceStep* s = req.add_sequences();
    s->set_slot(0);
    for (int b = 0; b < 63; ++b) s->add_block_table(b);
    for (int32_t t : prompt) s->add_token_ids(t);
    s->set_logits(pb::LOGITS_LAST);
    failure = (*cluster)->Step(req).status();
  }
  const auto failed_at = std::chrono::steady_clock::now();
  killer.join();
  ASSERT_TRUE(killed);
  ASSERT_FALSE(failure.ok());
  EXPECT_LT(failed_at - kill_time, std::chrono::seconds(10));
  EXPECT_THAT(std::string(failure.message()), ::testing::HasSubstr(absl::StrCat("rank ", victim)));
  std::printf("failed %.0f ms after the kill: %s\n",
              std::chrono::duration<double, std::milli>(failed_at - kill_time).count(),
              std::string(failure.message()).c_str());
  cluster->reset();
  for (int pid : pids) EXPECT_FALSE(ProcessExists(pid)) << "pid " << pid << " left behind";
}

}  // namespace
}  // namespace tandem::worker

namespace tandem::worker {
namespace {

// The coordinator's path: one long-lived StepStream per worker gives the same answers as Step,
// in order; a bad plan is INVALID_ARGUMENT naming the problem and leaves the worker usable.
TEST(ClusterTest, StepStreamAnswersLikeStepAndRejectsBadPlans) {
  const std::string dir = TinyModelDir("tiny", core::DType::kF32);
  auto cluster = LocalCluster::Start(ClusterOptions(dir, 1, 1));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::vector<int32_t> prompt = RandomPrompt(12, 4096, 9);
  pb::StepRequest prefill;
  pb::SequenceStep* s = prefill.add_sequences();
  s->set_slot(1);
  s->add_block_table(3);
  for (int32_t t : prompt) s->add_token_ids(t);
  s->set_logits(pb::LOGITS_LAST);
  s->set_top_logprobs(3);
  s->set_request_tag(77);
  auto unary = (*cluster)->Step(prefill);
  ASSERT_TRUE(unary.ok()) << unary.status();
  ASSERT_EQ(unary->results_size(), 1);
  EXPECT_EQ(unary->results(0).request_tag(), 77u);
  EXPECT_EQ(unary->results(0).top_logprobs_size(), 3);
  EXPECT_EQ(unary->results(0).top_logprobs(0).token_id(), unary->results(0).token_id());

  auto channel = grpc::CreateChannel((*cluster)->address(0), grpc::InsecureChannelCredentials());
  auto stub = pb::Worker::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  (*cluster)->credentials().AttachTo(&ctx);  // the owner's secret, id and epoch
  auto stream = stub->StepStream(&ctx);
  pb::StepRequest decode;
  *decode.add_sequences() = prefill.sequences(0);
  for (int i = 0; i < 3; ++i) {
    prefill.set_step_id(100 + i);
    ASSERT_TRUE(stream->Write(prefill));
    pb::StepResponse r;
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_EQ(r.step_id(), 100u + i);
    ASSERT_EQ(r.results_size(), 1);
    EXPECT_EQ(r.results(0).token_id(), unary->results(0).token_id());
    EXPECT_EQ(r.results(0).logprob(), unary->results(0).logprob());
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  pb::StepRequest bad = prefill;
  bad.mutable_sequences(0)->set_token_ids(0, 5000);  // outside the vocabulary
  auto rejected = (*cluster)->Step(bad);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument) << rejected.status();
  EXPECT_THAT(std::string(rejected.status().message()), ::testing::HasSubstr("5000"));
  auto again = (*cluster)->Step(prefill);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->results(0).token_id(), unary->results(0).token_id());
}

// A plan whose sampling parameters no coordinator would send (defence in depth): the sequence
// with an unusable parameter fails alone with INVALID_ARGUMENT naming it, extreme but meaningful
// values (top_k = 2^31-1, temperature = FLT_MAX, a denormal temperature, top_logprobs = 2^31-1)
// are sampled, the other sequences of the same step are answered as if alone, and the replica
// goes on; on the gathered (tp=1) and the vocabulary-sharded (tp=2) sampler.
TEST(ClusterTest, OneSequenceWithBadSamplingFailsAloneAndTheReplicaGoesOn) {
  const std::string dir = TinyModelDir("tiny", core::DType::kF32);
  for (int tp : {1, 2}) {
    SCOPED_TRACE(absl::StrCat("tp=", tp));
    auto cluster = LocalCluster::Start(ClusterOptions(dir, tp, 1));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    const int64_t vocab = (*cluster)->infos()[0].capabilities().vocab_size();
    const auto seq = [&](int32_t slot, uint64_t tag) {
      pb::SequenceStep s;
      s.set_slot(slot);
      s.add_block_table(slot * 4);
      for (int32_t t : RandomPrompt(6, static_cast<int>(vocab), 20 + slot)) s.add_token_ids(t);
      s.set_logits(pb::LOGITS_LAST);
      s.set_prompt_len(6);
      s.set_request_tag(tag);
      s.mutable_sampling()->set_temperature(1.0f);
      s.mutable_sampling()->set_seed(5);
      return s;
    };
    pb::StepRequest alone;
    *alone.add_sequences() = seq(0, 1);
    auto want = (*cluster)->Step(alone);
    ASSERT_TRUE(want.ok()) << want.status();

    struct Case {
      const char* field;  // empty: served
      void (*set)(pb::SequenceStep*);
    };
    const Case cases[] = {
        {"sampling.temperature",
         [](pb::SequenceStep* s) {
           s->mutable_sampling()->set_temperature(std::numeric_limits<float>::quiet_NaN());
         }},
        {"sampling.top_k", [](pb::SequenceStep* s) { s->mutable_sampling()->set_top_k(-3); }},
        {"sampling.top_p", [](pb::SequenceStep* s) { s->mutable_sampling()->set_top_p(7.0f); }},
        {"sampling.repetition_penalty",
         [](pb::SequenceStep* s) {
           s->mutable_sampling()->set_repetition_penalty(-std::numeric_limits<float>::infinity());
         }},
        {"",
         [](pb::SequenceStep* s) {
           s->mutable_sampling()->set_top_k(std::numeric_limits<int32_t>::max());
           s->set_top_logprobs(std::numeric_limits<int32_t>::max());
         }},
        {"", [](pb::SequenceStep* s) { s->mutable_sampling()->set_temperature(FLT_MAX); }},
        {"",
         [](pb::SequenceStep* s) {
           s->mutable_sampling()->set_temperature(std::numeric_limits<float>::denorm_min());
           s->mutable_sampling()->set_top_p(std::numeric_limits<float>::denorm_min());
           s->mutable_sampling()->set_min_p(1.0f);
         }},
    };
    for (const Case& c : cases) {
      SCOPED_TRACE(c.field);
      pb::StepRequest step;
      *step.add_sequences() = seq(0, 1);
      pb::SequenceStep* odd = step.add_sequences();
      *odd = seq(1, 2);
      c.set(odd);
      auto got = (*cluster)->Step(step);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->results_size(), 2);
      EXPECT_EQ(got->results(0).token_id(), want->results(0).token_id());
      EXPECT_EQ(got->results(0).error_code(), 0);
      const pb::SequenceResult& r = got->results(1);
      if (*c.field == '\0') {
        EXPECT_EQ(r.error_code(), 0) << r.error();
        EXPECT_GE(r.token_id(), 0);
        EXPECT_LT(r.token_id(), vocab);
      } else {
        EXPECT_EQ(r.error_code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
        EXPECT_THAT(r.error(), ::testing::HasSubstr(std::string(c.field) + ":"));
        EXPECT_EQ(r.token_id(), -1);
      }
    }
    auto again = (*cluster)->Step(alone);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->results(0).token_id(), want->results(0).token_id());
  }
}

// Two micro-batches (disjoint sequences) in flight at once on a 2-stage pipeline, many steps:
// every answer equals the same plans run one at a time, and a plan submitted behind another is
// answered in order.
TEST(ClusterTest, PipelinedMicroBatchesAnswerLikeOneAtATime) {
  const std::string dir = TinyModelDir("tiny", core::DType::kF32);
  std::mt19937 rng(std::random_device{}());
  constexpr int kSeqs = 4, kDecodes = 6;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < kSeqs; ++i)
    prompts.push_back(RandomPrompt(static_cast<int>(3 + rng() % 20), 4096, rng()));
  // Micro-batch m holds sequences m and m + 2 (slots = sequence index, 4 blocks each).
  const auto plan = [&](int m, int step, const std::vector<std::vector<int32_t>>& generated) {
    pb::StepRequest req;
    for (int i = m; i < kSeqs; i += 2) {
      pb::SequenceStep* s = req.add_sequences();
      s->set_slot(i);
      for (int b = 0; b < 4; ++b) s->add_block_table(4 * i + b);
      s->set_logits(pb::LOGITS_LAST);
      s->set_request_tag(i);
      s->set_prompt_len(static_cast<int64_t>(prompts[i].size()));
      if (step == 0) {
        for (int32_t t : prompts[i]) s->add_token_ids(t);
      } else {
        s->set_start_pos(static_cast<int64_t>(prompts[i].size()) + step - 1);
        s->add_token_ids(generated[i].back());
      }
    }
    return req;
  };
  std::vector<std::vector<std::vector<int32_t>>> runs;
  for (const bool pipelined : {false, true}) {
    auto cluster = LocalCluster::Start(ClusterOptions(dir, 1, 2));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    std::vector<std::vector<int32_t>> generated(kSeqs);
    const auto take = [&](const pb::StepResponse& r) {
      for (const auto& res : r.results()) generated[res.request_tag()].push_back(res.token_id());
    };
    for (int step = 0; step <= kDecodes; ++step) {
      if (pipelined) {
        ASSERT_TRUE((*cluster)->Submit(plan(0, step, generated)).ok());
        ASSERT_TRUE((*cluster)->Submit(plan(1, step, generated)).ok());
        EXPECT_EQ((*cluster)->in_flight(), 2);
        for (int m = 0; m < 2; ++m) {
          auto r = (*cluster)->Await();
          ASSERT_TRUE(r.ok()) << r.status();
          ASSERT_EQ(r->results_size(), 2);
          EXPECT_EQ(r->results(0).request_tag(), static_cast<uint64_t>(m));
          take(*r);
        }
      } else {
        for (int m = 0; m < 2; ++m) {
          auto r = (*cluster)->Step(plan(m, step, generated));
          ASSERT_TRUE(r.ok()) << r.status();
          take(*r);
        }
      }
    }
    EXPECT_EQ((*cluster)->in_flight(), 0);
    EXPECT_EQ((*cluster)->Await().status().code(), absl::StatusCode::kFailedPrecondition);
    runs.push_back(generated);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

}  // namespace
}  // namespace tandem::worker

namespace tandem::worker {
namespace {

std::vector<float> ReadNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (b.size() < 10) return {};
  const size_t header = 10 + static_cast<uint8_t>(b[8]) + 256 * static_cast<uint8_t>(b[9]);
  std::vector<float> out((b.size() - header) / sizeof(float));
  std::memcpy(out.data(), b.data() + header, out.size() * sizeof(float));
  return out;
}

// `tandem logits --tp 2 --pp 2` writes the single-process output; `tandem generate --tp --pp`
// prints the same greedy tokens.
TEST(ClusterTest, CommandLineLauncherMatchesOneProcess) {
  const std::string dir = TinyModelDir("tiny-7", core::DType::kF32);
  const std::string tandem = std::string(TANDEM_BINARY_DIR) + "/bin/tandem";
  const std::string tokens = "--tokens 3,14,15,92,65,35,89,79,32,38";
  const std::string one = TestRoot() + "/one.npy", dist = TestRoot() + "/dist.npy";
  ASSERT_EQ(std::system((absl::StrCat("timeout 60 ", tandem, " logits --model ", dir, " ", tokens,
                                      " --out ", one, " > /dev/null"))
                            .c_str()),
            0);
  ASSERT_EQ(std::system((absl::StrCat("timeout 60 ", tandem, " logits --model ", dir, " ", tokens,
                                      " --out ", dist, " --tp 2 --pp 2 > /dev/null"))
                            .c_str()),
            0);
  const std::vector<float> a = ReadNpy(one), b = ReadNpy(dist);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  EXPECT_LE(RelMaxErr(a.data(), b.data(), static_cast<int64_t>(a.size())), 1e-4);
  const auto run = [&](const std::string& extra) {
    const std::string out = TestRoot() + "/gen.txt";
    EXPECT_EQ(
        std::system((absl::StrCat("timeout 60 ", tandem, " generate --model ", dir, " ", tokens,
                                  " --max-new-tokens 8 --ignore-eos ", extra, " > ", out))
                        .c_str()),
        0);
    std::ifstream f(out);
    std::string line;
    std::getline(f, line);
    return line;
  };
  const std::string want = run("");
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(run("--tp 2 --pp 3"), want);
}

}  // namespace
}  // namespace tandem::worker
