// GPU benchmarks of the CUDA kernels, as fractions of the card's own ceilings measured in the same
// run: device-to-device copy bandwidth (bytes read + written) and cuBLASLt bf16 GEMM rate.
// Timing: CUDA events around `reps` launches after warm-up, median of 5 such samples; inputs are
// random (never zeros) and rotated over several slot sets where a working set would fit in L2.
// A plain executable (not Google Benchmark: device timing needs events); writes JSON to --out.
//   cuda_bench [--out=PATH] [--quick]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {
namespace {

#define BENCH_CHECK(expr)                                               \
  do {                                                                  \
    const absl::Status bench_st = (expr);                               \
    if (!bench_st.ok()) {                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, \
                   std::string(bench_st.message()).c_str());            \
      std::exit(1);                                                     \
    }                                                                   \
  } while (0)

void CudaCheck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Device buffer filled with uniform random values in [lo, hi) of type T (float or Bf16).
template <typename T>
T* RandomDevice(int64_t n, float lo, float hi, uint64_t seed) {
  std::vector<T> host(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(s >> 40) * (1.0f / 16777216.0f);
    const float v = lo + (hi - lo) * u;
    if constexpr (sizeof(T) == 2) {
      host[i].bits = core::FloatToBf16(v);
    } else {
      host[i] = v;
    }
  }
  void* d = nullptr;
  CudaCheck(cudaMalloc(&d, host.size() * sizeof(T)), "cudaMalloc");
  CudaCheck(cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "H2D");
  return static_cast<T*>(d);
}

template <typename V>
V* ToDevice(const std::vector<V>& host) {
  void* d = nullptr;
  CudaCheck(cudaMalloc(&d, std::max<size_t>(1, host.size() * sizeof(V))), "cudaMalloc");
  CudaCheck(cudaMemcpy(d, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice), "H2D");
  return static_cast<V*>(d);
}

// Median seconds per call of fn(i) (i counts calls, for rotating inputs).
double TimeIt(const std::function<void(int)>& fn, int reps) {
  cudaEvent_t a, b;
  CudaCheck(cudaEventCreate(&a), "event");
  CudaCheck(cudaEventCreate(&b), "event");
  int call = 0;
  for (int i = 0; i < 3; ++i) fn(call++);
  CudaCheck(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> samples;
  for (int s = 0; s < 5; ++s) {
    CudaCheck(cudaEventRecord(a), "record");
    for (int i = 0; i < reps; ++i) fn(call++);
    CudaCheck(cudaEventRecord(b), "record");
    CudaCheck(cudaEventSynchronize(b), "sync");
    CudaCheck(cudaGetLastError(), "launch");
    float ms = 0;
    CudaCheck(cudaEventElapsedTime(&ms, a, b), "elapsed");
    samples.push_back(ms * 1e-3 / reps);
  }
  std::sort(samples.begin(), samples.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return samples[samples.size() / 2];
}

struct Result {
  std::string name;
  double seconds = 0, bytes = 0, flops = 0;
};

int Main(int argc, char** argv) {
  std::string out = "bench/results/kernels_cuda.json";
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--out=", 6) == 0) out = argv[i] + 6;
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
  }
  absl::StatusOr<DeviceInfo> dev = GetDeviceInfo(0);
  BENCH_CHECK(dev.status());
  std::printf("device: %s, %d SMs, %.1f GiB, L2 %.0f MiB\n", dev->name.c_str(),
              dev->multiprocessors, dev->global_memory_bytes / 1073741824.0,
              dev->l2_bytes / 1048576.0);
  std::vector<Result> results;

  // ---- Ceilings ----
  const size_t copy_bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  CudaCheck(cudaMalloc(&src, copy_bytes), "malloc");
  CudaCheck(cudaMalloc(&dst, copy_bytes), "malloc");
  CudaCheck(cudaMemset(src, 0x3c, copy_bytes), "memset");
  const double copy_s = TimeIt(
      [&](int) {
        CudaCheck(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice), "copy");
      },
      10);
  const double copy_bw = 2.0 * copy_bytes / copy_s;
  results.push_back({"copy_1GiB_d2d", copy_s, 2.0 * copy_bytes, 0});
  cudaFree(src);
  cudaFree(dst);

  absl::StatusOr<std::unique_ptr<GemmHandle>> gemm = GemmHandle::Create();
  BENCH_CHECK(gemm.status());
  auto time_gemm = [&](int64_t m, int64_t k, int64_t n, int reps) {
    Bf16* x = RandomDevice<Bf16>(m * k, -1, 1, 1);
    Bf16* w = RandomDevice<Bf16>(n * k, -1, 1, 2);
    Bf16* y = RandomDevice<Bf16>(m * n, -1, 1, 3);
    const double s = TimeIt(
        [&](int) {
          BENCH_CHECK((*gemm)->Linear(LinearParams<Bf16>{x, w, y, m, k, n}, nullptr));
        },
        reps);
    cudaFree(x);
    cudaFree(w);
    cudaFree(y);
    return s;
  };
  const double gemm_s = time_gemm(8192, 8192, 8192, quick ? 3 : 10);
  const double gemm_peak = 2.0 * 8192.0 * 8192.0 * 8192.0 / gemm_s;
  results.push_back({"gemm_bf16_8192^3", gemm_s, 0, 2.0 * 8192.0 * 8192.0 * 8192.0});
  std::printf("ceilings: copy %.0f GB/s, bf16 GEMM %.0f TFLOP/s\n", copy_bw / 1e9,
              gemm_peak / 1e12);

  // Nemotron-H 8B shapes (configs/nemotron-h-8b).
  const int64_t H = 128, P = 64, G = 8, N = 128, hidden = 4096, K = 4;
  const int64_t inner = H * P, conv_ch = inner + 2 * G * N;

  // ---- Selective state update (decode), fp32 state, bf16 activations ----
  for (const int64_t batch : {1, 16, 32, 64, 256}) {
    const int64_t per_seq = H * P * N;
    const int64_t rot = std::max<int64_t>(1, (int64_t{512} << 20) / (per_seq * 4 * batch));
    const int64_t slots_n = batch * rot;
    float* state = RandomDevice<float>(slots_n * per_seq, -1, 1, 4);
    std::vector<int32_t*> slot_sets;
    for (int64_t r = 0; r < rot; ++r) {
      std::vector<int32_t> s(batch);
      std::iota(s.begin(), s.end(), static_cast<int32_t>(r * batch));
      slot_sets.push_back(ToDevice(s));
    }
    Bf16* x = RandomDevice<Bf16>(batch * inner, -1, 1, 5);
    Bf16* dt = RandomDevice<Bf16>(batch * H, -3, 1, 6);
    Bf16* B = RandomDevice<Bf16>(batch * G * N, -1, 1, 7);
    Bf16* C = RandomDevice<Bf16>(batch * G * N, -1, 1, 8);
    Bf16* y = RandomDevice<Bf16>(batch * inner, -1, 1, 9);
    float* A_log = RandomDevice<float>(H, -1, 1, 10);
    float* D = RandomDevice<float>(H, -1, 1, 11);
    float* dt_bias = RandomDevice<float>(H, -1, 0, 12);
    SelectiveStateUpdateParams<Bf16> p;
    p.x = x;
    p.dt = dt;
    p.A_log = A_log;
    p.B = B;
    p.C = C;
    p.D = D;
    p.dt_bias = dt_bias;
    p.ssm_state = state;
    p.y = y;
    p.batch = batch;
    p.num_heads = H;
    p.head_dim = P;
    p.n_groups = G;
    p.state_size = N;
    p.num_slots = slots_n;
    const double s = TimeIt(
        [&](int i) {
          p.slots = slot_sets[i % rot];
          BENCH_CHECK(SelectiveStateUpdate(p, nullptr));
        },
        20);
    const double bytes = batch * (per_seq * 8.0 + inner * 4.0 + H * 2.0 + G * N * 4.0);
    results.push_back({absl::StrCat("selective_state_update_8b_batch", batch), s, bytes, 0});
    for (int32_t* ss : slot_sets) cudaFree(ss);
    for (void* q : {(void*)state, (void*)x, (void*)dt, (void*)B, (void*)C, (void*)y, (void*)A_log,
                    (void*)D, (void*)dt_bias})
      cudaFree(q);
  }

  // ---- Conv1d update (decode), bf16 state ----
  for (const int64_t batch : {1, 32, 64, 256}) {
    const int64_t per_seq = conv_ch * (K - 1);
    const int64_t rot = std::max<int64_t>(1, (int64_t{256} << 20) / (per_seq * 2 * batch));
    Bf16* state = RandomDevice<Bf16>(batch * rot * per_seq, -1, 1, 13);
    std::vector<int32_t*> slot_sets;
    for (int64_t r = 0; r < rot; ++r) {
      std::vector<int32_t> s(batch);
      std::iota(s.begin(), s.end(), static_cast<int32_t>(r * batch));
      slot_sets.push_back(ToDevice(s));
    }
    Bf16* x = RandomDevice<Bf16>(batch * conv_ch, -1, 1, 14);
    Bf16* w = RandomDevice<Bf16>(conv_ch * K, -1, 1, 15);
    Bf16* bias = RandomDevice<Bf16>(conv_ch, -1, 1, 16);
    Bf16* o = RandomDevice<Bf16>(batch * conv_ch, -1, 1, 17);
    CausalConv1dUpdateParams<Bf16> p{x,     w,       bias, nullptr,     state, o,
                                     batch, conv_ch, K,    batch * rot, 0,     0};
    const double s = TimeIt(
        [&](int i) {
          p.slots = slot_sets[i % rot];
          BENCH_CHECK(CausalConv1dUpdate(p, nullptr));
        },
        20);
    const double bytes = batch * (per_seq * 4.0 + conv_ch * 4.0) + conv_ch * (K + 1) * 2.0;
    results.push_back({absl::StrCat("conv1d_update_8b_batch", batch), s, bytes, 0});
    for (int32_t* ss : slot_sets) cudaFree(ss);
    for (void* q : {(void*)state, (void*)x, (void*)w, (void*)bias, (void*)o}) cudaFree(q);
  }

  // ---- SSD prefill scan: one 8k-token sequence and 8 x 1k ----
  for (const int64_t seqs : {int64_t{1}, int64_t{8}}) {
    const int64_t tokens = 8192, len = tokens / seqs;
    std::vector<int32_t> cu(seqs + 1), slots(seqs);
    std::vector<uint8_t> init(seqs, 0);
    for (int64_t s = 0; s <= seqs; ++s) cu[s] = static_cast<int32_t>(s * len);
    std::iota(slots.begin(), slots.end(), 0);
    int32_t* dcu = ToDevice(cu);
    int32_t* dslots = ToDevice(slots);
    uint8_t* dinit = ToDevice(init);
    float* state = RandomDevice<float>(seqs * H * P * N, -1, 1, 18);
    Bf16* x = RandomDevice<Bf16>(tokens * inner, -1, 1, 19);
    Bf16* dt = RandomDevice<Bf16>(tokens * H, -3, 1, 20);
    Bf16* B = RandomDevice<Bf16>(tokens * G * N, -1, 1, 21);
    Bf16* C = RandomDevice<Bf16>(tokens * G * N, -1, 1, 22);
    Bf16* y = RandomDevice<Bf16>(tokens * inner, -1, 1, 23);
    float* A_log = RandomDevice<float>(H, -1, 1, 24);
    float* D = RandomDevice<float>(H, -1, 1, 25);
    float* dt_bias = RandomDevice<float>(H, -1, 0, 26);
    SsmScanParams<Bf16> p;
    p.x = x;
    p.dt = dt;
    p.A_log = A_log;
    p.B = B;
    p.C = C;
    p.D = D;
    p.dt_bias = dt_bias;
    p.cu_seqlens = dcu;
    p.slots = dslots;
    p.has_initial_state = dinit;
    p.ssm_state = state;
    p.y = y;
    p.num_seqs = seqs;
    p.num_heads = H;
    p.head_dim = P;
    p.n_groups = G;
    p.state_size = N;
    p.num_slots = seqs;
    const double s = TimeIt([&](int) { BENCH_CHECK(SsdChunkScan(p, nullptr)); }, quick ? 2 : 5);
    // Chunked-form FLOPs per token and head (L = chunk): C.B (L N), CB x (L P), C S (N P),
    // state update (N P), each a multiply-add.
    const double L = 32;
    const double flops = 2.0 * tokens * H * (L * N + L * P / 2 + 2.0 * N * P);
    const double bytes = tokens * (inner * 4.0 + 2.0 * G * N * 2.0 + H * 2.0);
    results.push_back({absl::StrCat("ssd_chunk_scan_8b_8k_tokens_", seqs, "seq"), s, bytes, flops});
    for (void* q : {(void*)dcu, (void*)dslots, (void*)dinit, (void*)state, (void*)x, (void*)dt,
                    (void*)B, (void*)C, (void*)y, (void*)A_log, (void*)D, (void*)dt_bias})
      cudaFree(q);
  }

  // ---- Paged decode attention: 8B attention layer shapes, 4k context ----
  for (const int64_t batch : {1, 16, 64}) {
    const int64_t qh = 32, kvh = 8, hd = 128, bs = 16, ctx = 4096;
    const int64_t blocks_per_seq = ctx / bs + 1, num_blocks = batch * blocks_per_seq;
    std::vector<int32_t> cu(batch + 1), start(batch, static_cast<int32_t>(ctx - 1)),
        tables(num_blocks);
    for (int64_t s = 0; s <= batch; ++s) cu[s] = static_cast<int32_t>(s);
    std::iota(tables.begin(), tables.end(), 0);
    std::shuffle(tables.begin(), tables.end(), std::mt19937(7));
    int32_t* dcu = ToDevice(cu);
    int32_t* dstart = ToDevice(start);
    int32_t* dtables = ToDevice(tables);
    const int64_t cache_n = num_blocks * bs * kvh * hd;
    Bf16* kc = RandomDevice<Bf16>(cache_n, -1, 1, 27);
    Bf16* vc = RandomDevice<Bf16>(cache_n, -1, 1, 28);
    Bf16* q = RandomDevice<Bf16>(batch * qh * hd, -1, 1, 29);
    Bf16* k = RandomDevice<Bf16>(batch * kvh * hd, -1, 1, 30);
    Bf16* v = RandomDevice<Bf16>(batch * kvh * hd, -1, 1, 31);
    Bf16* o = RandomDevice<Bf16>(batch * qh * hd, -1, 1, 32);
    PagedAttentionParams<Bf16> p{
        q,   k,  v,  dcu,        dstart,         dtables,         kc,    vc,    o, batch, qh,
        kvh, hd, bs, num_blocks, blocks_per_seq, 1.0f / 11.3137f, false, batch, 1};
    const double s = TimeIt([&](int) { BENCH_CHECK(PagedAttention(p, nullptr)); }, 20);
    const double bytes = batch * (2.0 * ctx * kvh * hd * 2.0);
    results.push_back({absl::StrCat("paged_decode_attention_ctx4k_batch", batch), s, bytes, 0});
    for (void* ptr : {(void*)dcu, (void*)dstart, (void*)dtables, (void*)kc, (void*)vc, (void*)q,
                      (void*)k, (void*)v, (void*)o})
      cudaFree(ptr);
  }

  // ---- GEMMs of the 8B model (decode batch 64, prefill 8k): in_proj, MLP up ----
  for (const int64_t m : {int64_t{64}, int64_t{8192}}) {
    const int64_t n = 2 * inner + 2 * G * N + H;  // mamba in_proj width
    const double s = time_gemm(m, hidden, n, m > 1000 ? 5 : 20);
    results.push_back({absl::StrCat("gemm_bf16_in_proj_m", m), s,
                       2.0 * (m * hidden + n * hidden + m * n), 2.0 * m * hidden * n});
  }

  // ---- Report ----
  std::printf("\n%-48s %12s %10s %10s %8s %8s\n", "kernel", "us", "GB/s", "TFLOP/s", "%copy",
              "%gemm");
  std::string json =
      absl::StrCat("{\n  \"device\": \"", dev->name, "\",\n  \"sm\": \"sm_", dev->major, dev->minor,
                   "\",\n  \"copy_bandwidth_gbs\": ", copy_bw / 1e9,
                   ",\n  \"gemm_bf16_tflops\": ", gemm_peak / 1e12, ",\n  \"results\": [\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const double bw = r.bytes / r.seconds, fl = r.flops / r.seconds;
    std::printf("%-48s %12.2f %10.1f %10.2f %7.1f%% %7.1f%%\n", r.name.c_str(), r.seconds * 1e6,
                bw / 1e9, fl / 1e12, 100.0 * bw / copy_bw, 100.0 * fl / gemm_peak);
    absl::StrAppend(&json, "    {\"name\": \"", r.name, "\", \"us\": ", r.seconds * 1e6,
                    ", \"bytes\": ", r.bytes, ", \"flops\": ", r.flops,
                    ", \"fraction_of_copy_bw\": ", bw / copy_bw,
                    ", \"fraction_of_gemm_peak\": ", fl / gemm_peak, "}",
                    i + 1 < results.size() ? ",\n" : "\n");
  }
  absl::StrAppend(&json, "  ]\n}\n");
  std::ofstream(out) << json;
  std::printf("\nwrote %s\n", out.c_str());
  return 0;
}

}  // namespace
}  // namespace tandem::kernels::cuda

int main(int argc, char** argv) { return tandem::kernels::cuda::Main(argc, argv); }
