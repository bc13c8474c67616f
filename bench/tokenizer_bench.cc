// Tokenizer encode throughput (single thread) on the tokenizer test corpus with the Nemotron-H
// structured tokenizer. Not a test. tools/reference/tokenizer/bench_tokenizer.sh runs it next to
// HF `tokenizers` and writes bench/results/tokenizer_encode.json.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_context.h"
#include "benchmark/benchmark.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::string DataDir() { return std::string(TANDEM_SOURCE_DIR) + "/tests/testdata/tokenizer"; }

std::vector<std::string> Corpus() {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(DataDir() + "/corpus")) {
    if (entry.path().extension() == ".txt") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> texts;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    texts.push_back(buffer.str());
  }
  return texts;
}

void RunEncode(benchmark::State& state, const std::string& config, bool fresh_each_iteration) {
  const auto texts = Corpus();
  int64_t bytes = 0, tokens = 0;
  auto tok = tandem::tokenizer::Tokenizer::FromFile(DataDir() + "/" + config);
  if (!tok.ok()) {
    state.SkipWithError(std::string(tok.status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    if (fresh_each_iteration) {
      state.PauseTiming();
      tok = tandem::tokenizer::Tokenizer::FromFile(DataDir() + "/" + config);
      state.ResumeTiming();
    }
    for (const auto& text : texts) {
      auto ids = (*tok)->Encode(text, false);
      benchmark::DoNotOptimize(ids);
      bytes += static_cast<int64_t>(text.size());
      tokens += static_cast<int64_t>(ids->size());
    }
  }
  state.SetBytesProcessed(bytes);
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

void BM_EncodeNemotronWarmCache(benchmark::State& state) {
  RunEncode(state, "tokenizer.json", false);
}
void BM_EncodeNemotronColdCache(benchmark::State& state) {
  RunEncode(state, "tokenizer.json", true);
}
void BM_EncodeGpt2WarmCache(benchmark::State& state) { RunEncode(state, "gpt2.json", false); }
BENCHMARK(BM_EncodeNemotronWarmCache)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_EncodeNemotronColdCache)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_EncodeGpt2WarmCache)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  tandem::bench::AddMachineContext();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
