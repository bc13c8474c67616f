// kernels_bench: CPU kernels, plain reference vs fast path, at tiny-model and 8B-like layer sizes.
//
//   kernels_bench --benchmark_out=bench/results/kernels_cpu.json --benchmark_out_format=json
//
// Threads: fast paths use core::ThreadPool::Default() (TANDEM_NUM_THREADS; recorded in the JSON
// context); LinearFast runs OpenBLAS single-threaded inside that pool.
#include <cmath>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_context.h"
#include "benchmark/benchmark.h"
#include "core/thread_pool.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_internal.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/paged_attention_internal.h"
#include "kernels/cpu/ssd_scan.h"

namespace tandem::kernels::cpu {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// ---- Linear: args T, K, N ----------------------------------------------------------------
template <void (*Fn)(const LinearParams&)>
void BM_Linear(benchmark::State& state) {
  const int64_t T = state.range(0), K = state.range(1), N = state.range(2);
  const std::vector<float> x = Random(T * K, 1), w = Random(N * K, 2);
  std::vector<float> y(T * N);
  for (auto _ : state) {
    Fn({x.data(), w.data(), y.data(), T, K, N});
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * T * K * N, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK_TEMPLATE(BM_Linear, Linear)
    ->Args({1, 1024, 1024})
    ->Args({64, 1024, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Linear, LinearFast)
    ->Args({1, 1024, 1024})
    ->Args({64, 1024, 1024})
    ->Args({256, 4096, 4096})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Decode shapes, the two paths of LinearFast side by side (the crossover kGemvMaxTokens): the
// built-in model's in_proj (128 -> 776) and LM head (128 -> 4096), and 1024/4096-wide layers.
void LinearGemvBest(const LinearParams& p) { internal::LinearGemv(p, BestCpuIsa()); }
void LinearGemvPortable(const LinearParams& p) { internal::LinearGemv(p, CpuIsa::kPortable); }
void DecodeShapes(benchmark::internal::Benchmark* b) {
  for (int64_t T : {1, 2, 4, 8, 12, 16}) {
    for (auto [K, N] :
         {std::pair<int64_t, int64_t>{128, 776}, {128, 4096}, {1024, 1024}, {4096, 4096}}) {
      b->Args({T, K, N});
    }
  }
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}
BENCHMARK_TEMPLATE(BM_Linear, internal::LinearBlas)->Apply(DecodeShapes);
BENCHMARK_TEMPLATE(BM_Linear, LinearGemvBest)->Apply(DecodeShapes);
BENCHMARK_TEMPLATE(BM_Linear, LinearGemvPortable)
    ->Args({1, 1024, 1024})
    ->Args({8, 1024, 1024})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- SSM scan: args T (one sequence), heads, head_dim, groups, state ---------------------
enum ScanKind { kSequential, kSequentialFast, kChunked, kChunkedFast };

template <ScanKind kKind>
void BM_SsmScan(benchmark::State& state) {
  const int64_t T = state.range(0), h = state.range(1), P = state.range(2), G = state.range(3),
                N = state.range(4);
  const std::vector<float> x = Random(T * h * P, 3), dt = Random(T * h, 4, -4.0f, 1.0f);
  const std::vector<float> B = Random(T * G * N, 5), C = Random(T * G * N, 6);
  const std::vector<float> A_log = Random(h, 7), D = Random(h, 8), dt_bias = Random(h, 9);
  std::vector<float> pool(h * P * N), y(T * h * P);
  const std::vector<int32_t> cu{0, static_cast<int32_t>(T)}, slots{0};
  const std::vector<uint8_t> has_init{0};
  SsmScanParams p;
  p.x = x.data();
  p.dt = dt.data();
  p.A_log = A_log.data();
  p.B = B.data();
  p.C = C.data();
  p.D = D.data();
  p.dt_bias = dt_bias.data();
  p.cu_seqlens = cu.data();
  p.slots = slots.data();
  p.has_initial_state = has_init.data();
  p.ssm_state = pool.data();
  p.y = y.data();
  p.num_seqs = 1;
  p.num_heads = h;
  p.head_dim = P;
  p.n_groups = G;
  p.state_size = N;
  p.num_slots = 1;
  for (auto _ : state) {
    switch (kKind) {
      case kSequential:
        SsmScan(p);
        break;
      case kSequentialFast:
        SsmScanFast(p);
        break;
      case kChunked:
        SsdChunkScan(p, 128);
        break;
      case kChunkedFast:
        SsdChunkScanFast(p, 128);
        break;
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(T), benchmark::Counter::kIsIterationInvariantRate);
}
// The "tiny" model (8 heads x 8, 4 groups, state 16) and one 8B Mamba layer (128 x 64, 8, 128).
#define SCAN_ARGS                     \
  ->Args({256, 8, 8, 4, 16})          \
      ->Args({256, 128, 64, 8, 128})  \
      ->Unit(benchmark::kMillisecond) \
      ->UseRealTime()
BENCHMARK_TEMPLATE(BM_SsmScan, kSequential) SCAN_ARGS;
BENCHMARK_TEMPLATE(BM_SsmScan, kSequentialFast) SCAN_ARGS;
BENCHMARK_TEMPLATE(BM_SsmScan, kChunked) SCAN_ARGS;
BENCHMARK_TEMPLATE(BM_SsmScan, kChunkedFast) SCAN_ARGS;
#undef SCAN_ARGS

// ---- Paged attention: args new tokens per seq, context before them, seqs; 32 q / 8 kv x 128 --
template <void (*Fn)(const PagedAttentionParams&)>
void BM_PagedAttention(benchmark::State& state) {
  const int64_t n = state.range(0), ctx = state.range(1), S = state.range(2);
  const int64_t Hq = 32, Hkv = 8, Dh = 128, bs = 16;
  const int64_t blocks_per_seq = (ctx + n + bs - 1) / bs;
  const std::vector<float> q = Random(S * n * Hq * Dh, 10), k = Random(S * n * Hkv * Dh, 11),
                           v = Random(S * n * Hkv * Dh, 12);
  std::vector<float> k_cache = Random(S * blocks_per_seq * bs * Hkv * Dh, 13);
  std::vector<float> v_cache = Random(S * blocks_per_seq * bs * Hkv * Dh, 14);
  std::vector<float> out(S * n * Hq * Dh);
  std::vector<int32_t> cu{0}, start, tables;
  for (int64_t s = 0; s < S; ++s) {
    cu.push_back(static_cast<int32_t>(cu.back() + n));
    start.push_back(static_cast<int32_t>(ctx));
    for (int64_t b = 0; b < blocks_per_seq; ++b) {
      tables.push_back(static_cast<int32_t>((b * S + s)));  // interleaved blocks
    }
  }
  PagedAttentionParams p;
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.cu_seqlens = cu.data();
  p.start_pos = start.data();
  p.block_tables = tables.data();
  p.k_cache = k_cache.data();
  p.v_cache = v_cache.data();
  p.out = out.data();
  p.num_seqs = S;
  p.num_q_heads = Hq;
  p.num_kv_heads = Hkv;
  p.head_dim = Dh;
  p.block_size = bs;
  p.num_blocks = S * blocks_per_seq;
  p.max_blocks_per_seq = blocks_per_seq;
  p.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  for (auto _ : state) {
    Fn(p);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(S * n), benchmark::Counter::kIsIterationInvariantRate);
}
// Prefill of 256 tokens from empty; decode of 8 sequences at 1024 context.
BENCHMARK_TEMPLATE(BM_PagedAttention, PagedAttention)
    ->Args({256, 0, 1})
    ->Args({1, 1024, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_PagedAttention, PagedAttentionFast)
    ->Args({256, 0, 1})
    ->Args({1, 1024, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
// The fast path's two builds side by side (portable vs the best this CPU runs, AVX2+FMA here):
// decode of 8 sequences at 1024 context and of one at 192.
void PagedAttentionPortable(const PagedAttentionParams& p) {
  internal::PagedAttentionFastWithIsa(p, CpuIsa::kPortable);
}
void PagedAttentionBest(const PagedAttentionParams& p) {
  internal::PagedAttentionFastWithIsa(p, BestCpuIsa());
}
BENCHMARK_TEMPLATE(BM_PagedAttention, PagedAttentionPortable)
    ->Args({1, 1024, 8})
    ->Args({1, 192, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_PagedAttention, PagedAttentionBest)
    ->Args({1, 1024, 8})
    ->Args({1, 192, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace tandem::kernels::cpu

int main(int argc, char** argv) {
  tandem::bench::AddMachineContext();
  benchmark::AddCustomContext("tandem_threads",
                              std::to_string(tandem::core::ThreadPool::Default().size()));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
