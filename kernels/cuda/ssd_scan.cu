// Mamba-2 SSD chunked scan for varlen prefill (fp32 state in slots), CUDA cores in fp32.
//
// One block per (sequence, head, head_dim tile of P rows) walks its sequence chunk by chunk
// (L tokens). Per chunk, with dt_t = softplus(dt + dt_bias), a_t = dt_t * A and cum the inclusive
// prefix sum of a over the chunk:
//   CB[i, j]  = (C_i . B_j) * exp(cum_i - cum_j) * dt_j        for j <= i (segment-sum decay)
//   y[i, p]   = sum_j CB[i, j] x[j, p] + exp(cum_i) * (C_i . S[p, :]) + D x[i, p]
//   S[p, n]  <- exp(cum_last) S[p, n] + sum_j exp(cum_last - cum_j) dt_j x[j, p] B[j, n]
// which is the recurrence of kernels/cpu/ssd_scan.h regrouped (equal up to fp32 rounding).
// Shared-memory rows of B, C and S are padded by one float (no bank conflicts in the dots).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/device.h"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

constexpr int kL = static_cast<int>(SsdChunkSize());
constexpr int kP = static_cast<int>(SsdHeadDimTile());
static_assert(kL == 32, "the dt prefix sum is one warp scan");

struct ScanStrides {
  int64_t x, dt, b, c, heads_per_group;
};

template <typename T>
__global__ void SsdChunkScanKernel(SsmScanParams<T> p, ScanStrides st) {
  extern __shared__ float smem[];
  const int N = static_cast<int>(p.state_size), NP = N + 1;
  const int64_t hd = p.head_dim;
  float* dts = smem;         // [L]
  float* cum = dts + kL;     // [L]
  float* Bs = cum + kL;      // [L][NP]
  float* Cs = Bs + kL * NP;  // [L][NP]
  float* xs = Cs + kL * NP;  // [L][P]
  float* CB = xs + kL * kP;  // [L][L]
  float* S = CB + kL * kL;   // [P][NP]

  const int64_t s = blockIdx.x, h = blockIdx.y, p0 = int64_t{blockIdx.z} * kP;
  const int64_t g = h / st.heads_per_group;
  const int tid = threadIdx.x, nthreads = blockDim.x;
  const int64_t start = p.cu_seqlens[s], len = p.cu_seqlens[s + 1] - start;
  const float A = -expf(p.A_log[h]);
  const float Dh = p.D[h];
  const float bias = p.dt_bias[h];
  const bool init = p.has_initial_state && p.has_initial_state[s];
  float* state = p.ssm_state + ((int64_t{p.slots[s]} * p.num_heads + h) * hd) * N;

  for (int idx = tid; idx < kP * N; idx += nthreads) {
    const int pp = idx / N, n = idx % N;
    S[pp * NP + n] = (init && p0 + pp < hd) ? state[(p0 + pp) * N + n] : 0.0f;
  }

  for (int64_t c0 = 0; c0 < len; c0 += kL) {
    const int Lc = static_cast<int>(len - c0 < kL ? len - c0 : kL);
    __syncthreads();  // the previous chunk's state update is done with dts/cum/Bs/xs
    if (tid < 32) {
      float d = 0.0f;
      if (tid < Lc) d = SoftplusF(Load(p.dt + (start + c0 + tid) * st.dt + h) + bias);
      float a = d * A;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const float up = __shfl_up_sync(0xffffffffu, a, o);
        if (tid >= o) a += up;
      }
      dts[tid] = d;
      cum[tid] = a;
    }
    for (int idx = tid; idx < kL * N; idx += nthreads) {
      const int i = idx / N, n = idx % N;
      const int64_t row = start + c0 + i;
      const bool ok = i < Lc;
      Bs[i * NP + n] = ok ? Load(p.B + row * st.b + g * N + n) : 0.0f;
      Cs[i * NP + n] = ok ? Load(p.C + row * st.c + g * N + n) : 0.0f;
    }
    for (int idx = tid; idx < kL * kP; idx += nthreads) {
      const int i = idx / kP, pp = idx % kP;
      const bool ok = i < Lc && p0 + pp < hd;
      xs[idx] = ok ? Load(p.x + (start + c0 + i) * st.x + h * hd + p0 + pp) : 0.0f;
    }
    __syncthreads();
    for (int idx = tid; idx < kL * kL; idx += nthreads) {
      const int i = idx / kL, j = idx % kL;
      float v = 0.0f;
      if (j <= i && i < Lc) {
        const float* ci = Cs + i * NP;
        const float* bj = Bs + j * NP;
        for (int n = 0; n < N; ++n) v += ci[n] * bj[n];
        v *= expf(cum[i] - cum[j]) * dts[j];
      }
      CB[idx] = v;
    }
    __syncthreads();
    for (int idx = tid; idx < kL * kP; idx += nthreads) {
      const int i = idx / kP, pp = idx % kP;
      if (i >= Lc || p0 + pp >= hd) continue;
      float intra = 0.0f;
      for (int j = 0; j <= i; ++j) intra += CB[i * kL + j] * xs[j * kP + pp];
      float inter = 0.0f;
      const float* ci = Cs + i * NP;
      const float* sp = S + pp * NP;
      for (int n = 0; n < N; ++n) inter += ci[n] * sp[n];
      const float yv = intra + expf(cum[i]) * inter + Dh * xs[i * kP + pp];
      Store(p.y + (start + c0 + i) * (p.num_heads * hd) + h * hd + p0 + pp, yv);
    }
    __syncthreads();  // every y read S (and dts) before they change
    const float total = cum[Lc - 1];
    const float decay_all = expf(total);
    // dts[j] becomes the weight of token j in the chunk's final state: exp(total - cum_j) dt_j.
    if (tid < kL) dts[tid] = tid < Lc ? expf(total - cum[tid]) * dts[tid] : 0.0f;
    __syncthreads();
    for (int idx = tid; idx < kP * N; idx += nthreads) {
      const int pp = idx / N, n = idx % N;
      float acc = S[pp * NP + n] * decay_all;
      for (int j = 0; j < Lc; ++j) acc += dts[j] * xs[j * kP + pp] * Bs[j * NP + n];
      S[pp * NP + n] = acc;
    }
  }
  __syncthreads();
  for (int idx = tid; idx < kP * N; idx += nthreads) {
    const int pp = idx / N, n = idx % N;
    if (p0 + pp < hd) state[(p0 + pp) * N + n] = S[pp * NP + n];
  }
}

}  // namespace

template <typename T>
absl::Status SsdChunkScan(const SsmScanParams<T>& p, void* stream) {
  // Query the opt-in limit once per process (device 0; the backend runs one device per process).
  static const int64_t max_shared = [] {
    absl::StatusOr<DeviceInfo> info = GetDeviceInfo(0);
    // Without device information assume the build target's (sm_90) opt-in limit; launches fail
    // then.
    return info.ok() ? info->max_shared_per_block_optin : int64_t{227 << 10};
  }();
  ASSIGN_OR_RETURN(SsdLaunchPlan plan, PlanSsdScan(p.num_seqs, p.num_heads, p.head_dim, p.n_groups,
                                                   p.state_size, max_shared));
  const int64_t inner = p.num_heads * p.head_dim, bc = p.n_groups * p.state_size;
  ScanStrides st{p.x_stride ? p.x_stride : inner, p.dt_stride ? p.dt_stride : p.num_heads,
                 p.b_stride ? p.b_stride : bc, p.c_stride ? p.c_stride : bc,
                 p.num_heads / p.n_groups};
  if (st.x < inner || st.dt < p.num_heads || st.b < bc || st.c < bc || p.num_slots < 0 ||
      plan.grid_y > 65535 || plan.grid_z > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("SsdChunkScan: x_stride=", st.x,
                                                   " dt_stride=", st.dt, " b_stride=", st.b,
                                                   " c_stride=", st.c, " heads=", p.num_heads));
  }
  if (p.num_seqs == 0) return absl::OkStatus();
  RETURN_IF_ERROR(CudaError(
      cudaFuncSetAttribute(SsdChunkScanKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(plan.shared_bytes)),
      "SsdChunkScan shared memory"));
  const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.grid_y),
                  static_cast<unsigned>(plan.grid_z));
  SsdChunkScanKernel<T>
      <<<grid, static_cast<unsigned>(plan.threads), plan.shared_bytes, AsStream(stream)>>>(p, st);
  return LastLaunch("SsdChunkScan");
}
template absl::Status SsdChunkScan<float>(const SsmScanParams<float>&, void*);
template absl::Status SsdChunkScan<Bf16>(const SsmScanParams<Bf16>&, void*);

}  // namespace tandem::kernels::cuda
