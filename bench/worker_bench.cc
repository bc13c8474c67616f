// Per-step time of the tiny model as real worker processes on loopback: one process (a 1x1
// cluster, so the gRPC control cost is included, and the model in this process for comparison)
// vs tp=2 vs pp=2 (and tp=2 with the UCX collective). A decode step (1 token) and a 64-token
// prefill step of one sequence. Never a test.
//   build/bin/worker_bench --benchmark_out=bench/results/worker_loopback.json
//                          --benchmark_out_format=json
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "bench/bench_context.h"
#include "benchmark/benchmark.h"
#include "core/tiny_model.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "worker/local_cluster.h"

namespace {

namespace pb = ::tandem::worker::v1;
std::string g_model_dir;
std::string g_tandem;

pb::StepRequest Plan(int64_t start, int64_t tokens) {
  pb::StepRequest req;
  pb::SequenceStep* s = req.add_sequences();
  s->set_slot(0);
  for (int b = 0; b < 16; ++b) s->add_block_table(b);
  s->set_start_pos(start);
  for (int64_t i = 0; i < tokens; ++i) s->add_token_ids(static_cast<int32_t>((i * 37 + 5) % 4096));
  s->set_logits(pb::LOGITS_LAST);
  return req;
}

void BM_Cluster(benchmark::State& state, int tp, int pp, const std::string& collective) {
  tandem::worker::LocalClusterOptions o;
  o.tandem_binary = g_tandem;
  o.model_dir = g_model_dir;
  o.tp = tp;
  o.pp = pp;
  o.collective = collective;
  o.num_slots = 1;
  o.num_blocks = 16;
  auto cluster = tandem::worker::LocalCluster::Start(o);
  if (!cluster.ok()) {
    state.SkipWithError(std::string(cluster.status().message()).c_str());
    return;
  }
  const int64_t tokens = state.range(0);
  // Prefill 64 tokens once; decode steps then continue at position 64 (state is overwritten
  // each time, which does not change the work).
  if (!(*cluster)->Step(Plan(0, 64)).ok()) {
    state.SkipWithError("prefill failed");
    return;
  }
  const pb::StepRequest req = tokens == 1 ? Plan(64, 1) : Plan(0, tokens);
  for (auto _ : state) {
    auto r = (*cluster)->Step(req);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      break;
    }
  }
  state.counters["tokens_per_step"] = static_cast<double>(tokens);
}

void BM_InProcess(benchmark::State& state) {
  auto model = tandem::model::NemotronHModel::Load(g_model_dir, {});
  if (!model.ok()) {
    state.SkipWithError("load failed");
    return;
  }
  tandem::model::AllocateForOneSequence(**model, 256);
  tandem::model::StepPlan plan;
  const int64_t tokens = state.range(0);
  std::vector<int32_t> blocks(16);
  for (int i = 0; i < 16; ++i) blocks[i] = i;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < tokens; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 5) % 4096));
  plan.sequences.push_back(
      {0, blocks, tokens == 1 ? 64 : 0, ids, tandem::model::LogitsRequest::kLast});
  for (auto _ : state) {
    auto r = (*model)->Step(plan);
    benchmark::DoNotOptimize(r);
  }
  state.counters["tokens_per_step"] = static_cast<double>(tokens);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = "/tmp/tandem-worker-bench-" + std::to_string(getpid());
  tandem::core::TinyModelOptions o;
  o.dtype = tandem::core::DType::kF32;
  if (!tandem::core::WriteTinyModel(o, dir).ok()) return 1;
  g_model_dir = dir;
  g_tandem = (std::filesystem::path(std::filesystem::read_symlink("/proc/self/exe")).parent_path() /
              "tandem")
                 .string();
  tandem::bench::AddMachineContext();
  benchmark::AddCustomContext("model", "tiny (f32), one sequence");
  benchmark::AddCustomContext("topology",
                              "worker processes on one machine, gRPC + Gloo/UCX on loopback");
  benchmark::RegisterBenchmark("step/in_process", BM_InProcess)->Arg(1)->Arg(64)->UseRealTime();
  for (auto [name, tp, pp, coll] : {std::tuple{"step/cluster_1x1", 1, 1, "gloo"},
                                    {"step/tp2_gloo", 2, 1, "gloo"},
                                    {"step/tp2_ucx", 2, 1, "ucx"},
                                    {"step/pp2", 1, 2, "gloo"}}) {
    benchmark::RegisterBenchmark(name, BM_Cluster, tp, pp, std::string(coll))
        ->Arg(1)
        ->Arg(64)
        ->UseRealTime()
        ->MinTime(1.0);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
