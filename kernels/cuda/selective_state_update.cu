// Mamba-2 decode step: one token per sequence, fp32 state updated in place in its slot.
// Memory-bound: each (batch, head) streams head_dim x state_size fp32 state in and out. A block of
// 4 warps owns rows_per_block rows of head_dim; a warp updates one row at a time with 16-byte
// loads/stores (lane l holds state[n = 4l .. 4l+3 (+128k)]), reduces y over the warp, and keeps
// several rows' loads in flight (rows unrolled).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

struct UpdateStrides {
  int64_t x, dt, b, c, heads_per_group, rows_per_block;
};

template <typename T, bool kVec>
__global__ void __launch_bounds__(128)
    SelectiveStateUpdateKernel(SelectiveStateUpdateParams<T> p, UpdateStrides st) {
  const int64_t b = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int N = static_cast<int>(p.state_size);
  const int64_t hd = p.head_dim, g = h / st.heads_per_group;
  const float dt = SoftplusF(Load(p.dt + b * st.dt + h) + p.dt_bias[h]);
  const float dA = expf(dt * -expf(p.A_log[h]));
  const float Dh = p.D[h];
  const T* Bp = p.B + b * st.b + g * N;
  const T* Cp = p.C + b * st.c + g * N;
  float* state = p.ssm_state + (int64_t{p.slots[b]} * p.num_heads + h) * hd * N;
  const int64_t row0 = int64_t{blockIdx.z} * st.rows_per_block;
  const int64_t row_end = min(hd, row0 + st.rows_per_block);
#pragma unroll 4
  for (int64_t r = row0 + warp; r < row_end; r += 4) {
    const float xv = Load(p.x + b * st.x + h * hd + r);
    const float dtx = dt * xv;
    float* srow = state + r * N;
    float acc = 0.0f;
    if constexpr (kVec) {
      for (int v = lane; v < N / 4; v += 32) {
        float4 s4 = reinterpret_cast<float4*>(srow)[v];
        const int n = 4 * v;
        s4.x = s4.x * dA + dtx * Load(Bp + n);
        s4.y = s4.y * dA + dtx * Load(Bp + n + 1);
        s4.z = s4.z * dA + dtx * Load(Bp + n + 2);
        s4.w = s4.w * dA + dtx * Load(Bp + n + 3);
        acc += s4.x * Load(Cp + n) + s4.y * Load(Cp + n + 1) + s4.z * Load(Cp + n + 2) +
               s4.w * Load(Cp + n + 3);
        reinterpret_cast<float4*>(srow)[v] = s4;
      }
    } else {
      for (int n = lane; n < N; n += 32) {
        const float sv = srow[n] * dA + dtx * Load(Bp + n);
        acc += sv * Load(Cp + n);
        srow[n] = sv;
      }
    }
    acc = WarpSum(acc);
    if (lane == 0) Store(p.y + (b * p.num_heads + h) * hd + r, acc + Dh * xv);
  }
}

}  // namespace

template <typename T>
absl::Status SelectiveStateUpdate(const SelectiveStateUpdateParams<T>& p, void* stream) {
  ASSIGN_OR_RETURN(StateUpdatePlan plan,
                   PlanStateUpdate(p.batch, p.num_heads, p.head_dim, p.n_groups, p.state_size));
  const int64_t inner = p.num_heads * p.head_dim, bc = p.n_groups * p.state_size;
  UpdateStrides st{p.x_stride ? p.x_stride : inner, p.dt_stride ? p.dt_stride : p.num_heads,
                   p.b_stride ? p.b_stride : bc,    p.c_stride ? p.c_stride : bc,
                   p.num_heads / p.n_groups,        plan.rows_per_block};
  if (st.x < inner || st.dt < p.num_heads || st.b < bc || st.c < bc || plan.grid_y > 65535 ||
      plan.grid_z > 65535 || p.batch > 0x7fffffff) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SelectiveStateUpdate: x_stride=", st.x, " dt_stride=", st.dt, " b_stride=", st.b,
        " c_stride=", st.c, " heads=", p.num_heads, " batch=", p.batch));
  }
  if (p.batch == 0) return absl::OkStatus();
  const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.grid_y),
                  static_cast<unsigned>(plan.grid_z));
  // 16-byte state accesses need a 16-byte aligned pool (cudaMalloc gives 256).
  const bool vec = plan.vectorized && (reinterpret_cast<uintptr_t>(p.ssm_state) % 16 == 0);
  if (vec) {
    SelectiveStateUpdateKernel<T, true><<<grid, 128, 0, AsStream(stream)>>>(p, st);
  } else {
    SelectiveStateUpdateKernel<T, false><<<grid, 128, 0, AsStream(stream)>>>(p, st);
  }
  return LastLaunch("SelectiveStateUpdate");
}
template absl::Status SelectiveStateUpdate<float>(const SelectiveStateUpdateParams<float>&, void*);
template absl::Status SelectiveStateUpdate<Bf16>(const SelectiveStateUpdateParams<Bf16>&, void*);

}  // namespace tandem::kernels::cuda
