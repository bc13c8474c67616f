// model_bench: prefill and decode throughput of a Nemotron-H checkpoint on this CPU, plain
// reference kernels vs the fast paths (one process, no tensor or pipeline parallelism).
//
//   build/bin/model_bench --benchmark_out=bench/results/model_cpu.json --benchmark_out_format=json
//   build/bin/model_bench --model DIR ...     # any checkpoint directory (config.json +
//   safetensors)
//
// Counters: tokens_per_second (prefill: prompt tokens; decode: generated tokens over a batch of
// sequences, one token each per step). Prefill: 16, 256 and 512 prompt tokens; decode: batches of
// 1, 16 and 64 after a 64-token prompt each. Without --model the tiny model is written to a
// temporary directory (bf16, preset "tiny", seed 0) once per process.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "bench/bench_context.h"
#include "benchmark/benchmark.h"
#include "core/tiny_model.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"

namespace tandem::model {
namespace {

std::string& GivenModelDir() {
  static std::string dir;  // --model
  return dir;
}

const std::string& ModelDir() {
  static const std::string dir = [] {
    if (!GivenModelDir().empty()) return GivenModelDir();
    const std::string d = (std::filesystem::temp_directory_path() /
                           ("tandem_model_bench_" + std::to_string(getpid())))
                              .string();
    core::TinyModelOptions options;
    if (!core::WriteTinyModel(options, d).ok()) std::abort();
    return d;
  }();
  return dir;
}

std::unique_ptr<NemotronHModel> Load(bool reference) {
  ModelOptions options;
  options.reference_kernels = reference;
  auto m = NemotronHModel::Load(ModelDir(), options);
  if (!m.ok()) {
    std::fprintf(stderr, "model_bench: cannot load %s: %s\n", ModelDir().c_str(),
                 std::string(m.status().message()).c_str());
    std::exit(1);
  }
  return std::move(*m);
}

// Args: prompt length, reference (1) or fast (0).
void BM_Prefill(benchmark::State& state) {
  const int64_t len = state.range(0);
  auto model = Load(state.range(1) != 0);
  const int64_t vocab = model->config().vocab_size;
  std::vector<int32_t> prompt(len);
  for (int64_t i = 0; i < len; ++i) prompt[i] = static_cast<int32_t>((i * 131 + 7) % vocab);
  AllocateForOneSequence(*model, len);
  const int64_t blocks = (len + 15) / 16;
  std::vector<int32_t> table(blocks);
  std::iota(table.begin(), table.end(), 0);
  StepPlan plan;
  plan.sequences.push_back({0, table, 0, prompt, LogitsRequest::kLast});
  for (auto _ : state) {
    auto out = model->Step(plan);
    benchmark::DoNotOptimize(out);
  }
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(len), benchmark::Counter::kIsIterationInvariantRate);
}

// Args: batch (sequences decoding one token each per step), reference (1) or fast (0).
void BM_Decode(benchmark::State& state) {
  const int64_t batch = state.range(0), context = 64;
  auto model = Load(state.range(1) != 0);
  const int64_t vocab = model->config().vocab_size;
  const int64_t blocks_per_seq = (context + 256 + 15) / 16;
  model->AllocateState({batch, batch * blocks_per_seq, 16});
  StepPlan plan;
  for (int64_t s = 0; s < batch; ++s) {
    std::vector<int32_t> table(blocks_per_seq);
    std::iota(table.begin(), table.end(), static_cast<int32_t>(s * blocks_per_seq));
    std::vector<int32_t> prompt(context, static_cast<int32_t>((1000 + s) % vocab));
    plan.sequences.push_back({static_cast<int32_t>(s), table, 0, prompt, LogitsRequest::kLast});
  }
  if (!model->Step(plan).ok()) std::abort();  // prefill every sequence
  int64_t pos = context;
  for (auto _ : state) {
    for (auto& s : plan.sequences) {
      s.start_pos = pos;
      s.token_ids = {static_cast<int32_t>(pos % vocab)};
    }
    auto out = model->Step(plan);
    benchmark::DoNotOptimize(out);
    // Stay inside the allocated blocks: wrap around to re-decode the same positions.
    pos = pos + 1 < context + 256 ? pos + 1 : context;
  }
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_Prefill)
    ->ArgNames({"prompt", "reference"})
    ->ArgsProduct({{16, 256, 512}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Decode)
    ->ArgNames({"batch", "reference"})
    ->ArgsProduct({{1, 16, 64}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace tandem::model

int main(int argc, char** argv) {
  // --model DIR (or --model=DIR): benchmark that checkpoint; the other flags go to the library.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) {
      tandem::model::GivenModelDir() = argv[++i];
    } else if (a.rfind("--model=", 0) == 0) {
      tandem::model::GivenModelDir() = a.substr(8);
    } else {
      rest.push_back(argv[i]);
    }
  }
  argc = static_cast<int>(rest.size());
  argv = rest.data();
  tandem::bench::AddMachineContext();
  if (!tandem::model::GivenModelDir().empty()) {
    benchmark::AddCustomContext("model", tandem::model::GivenModelDir());
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (tandem::model::GivenModelDir().empty()) {
    std::error_code ec;
    std::filesystem::remove_all(tandem::model::ModelDir(), ec);
  }
  return 0;
}
