#include "kernels/cuda/launch_plan.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::kernels::cuda {

absl::StatusOr<SsdLaunchPlan> PlanSsdScan(int64_t num_seqs, int64_t num_heads, int64_t head_dim,
                                          int64_t n_groups, int64_t state_size,
                                          int64_t max_shared_bytes) {
  if (num_seqs < 0 || num_heads <= 0 || head_dim <= 0 || n_groups <= 0 || state_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ssd scan: bad sizes num_seqs=", num_seqs, " num_heads=", num_heads,
                     " head_dim=", head_dim, " n_groups=", n_groups, " state_size=", state_size));
  }
  if (num_heads % n_groups != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ssd scan: num_heads ", num_heads, " not divisible by n_groups ", n_groups));
  }
  SsdLaunchPlan plan;
  plan.grid_x = num_seqs;
  plan.grid_y = num_heads;
  plan.grid_z = CeilDiv(head_dim, SsdHeadDimTile());
  const int64_t L = SsdChunkSize(), P = SsdHeadDimTile(), N = state_size;
  // floats: dt, cum (L each); B, C (L x (N + 1) each); x (L x P); CB (L x L); S (P x (N + 1)).
  const int64_t floats = 2 * L + 2 * L * (N + 1) + L * P + L * L + P * (N + 1);
  plan.shared_bytes = floats * 4;
  if (plan.shared_bytes > max_shared_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("ssd scan: state_size ", state_size, " needs ",
                                                   plan.shared_bytes, " bytes of shared memory; ",
                                                   max_shared_bytes, " available"));
  }
  return plan;
}

absl::StatusOr<StateUpdatePlan> PlanStateUpdate(int64_t batch, int64_t num_heads, int64_t head_dim,
                                                int64_t n_groups, int64_t state_size) {
  if (batch < 0 || num_heads <= 0 || head_dim <= 0 || n_groups <= 0 || state_size <= 0 ||
      num_heads % n_groups != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("selective state update: bad sizes batch=", batch, " num_heads=", num_heads,
                     " head_dim=", head_dim, " n_groups=", n_groups, " state_size=", state_size));
  }
  StateUpdatePlan plan;
  // 4 warps, each owning rows_per_block / 4 rows: enough loads in flight per warp while keeping
  // enough blocks for small batches.
  plan.rows_per_block = std::min<int64_t>(16, ((head_dim + 3) / 4) * 4);
  plan.grid_x = batch;
  plan.grid_y = num_heads;
  plan.grid_z = CeilDiv(head_dim, plan.rows_per_block);
  plan.vectorized = state_size % 4 == 0;
  return plan;
}

absl::StatusOr<AttentionPlan> PlanAttention(int64_t num_seqs, int64_t num_q_heads,
                                            int64_t num_kv_heads, int64_t head_dim,
                                            int64_t max_query_len, int64_t max_shared_bytes) {
  if (num_seqs < 0 || num_q_heads <= 0 || num_kv_heads <= 0 || head_dim <= 0 || max_query_len < 0 ||
      num_q_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paged attention: bad sizes num_seqs=", num_seqs, " num_q_heads=", num_q_heads,
        " num_kv_heads=", num_kv_heads, " head_dim=", head_dim, " max_query_len=", max_query_len));
  }
  if (head_dim > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged attention: head_dim ", head_dim, " > 256 is not supported"));
  }
  AttentionPlan plan;
  plan.decode = max_query_len == 1;
  plan.grid_y = num_q_heads;
  plan.grid_z = num_seqs;
  if (plan.decode) {
    plan.grid_x = 1;
    plan.threads = 128;
    plan.shared_bytes = (4 * head_dim + 4 * 2) * 4;  // per-warp accumulators, max and sum
  } else {
    plan.grid_x = CeilDiv(std::max<int64_t>(max_query_len, 1), plan.q_tile);
    // floats: q tile, k tile (rows padded by one), v tile, scores, acc; row max / sum / rescale.
    const int64_t floats = plan.q_tile * head_dim + plan.k_tile * (2 * head_dim + 1) +
                           plan.q_tile * plan.k_tile + plan.q_tile * head_dim + 3 * plan.q_tile;
    plan.shared_bytes = floats * 4;
  }
  if (plan.shared_bytes > max_shared_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("paged attention: head_dim ", head_dim,
                                                   " needs ", plan.shared_bytes,
                                                   " bytes of shared memory"));
  }
  return plan;
}

int64_t RowThreads(int64_t width, int64_t per_thread) {
  int64_t threads = CeilDiv(std::max<int64_t>(width, 1), std::max<int64_t>(per_thread, 1));
  threads = CeilDiv(threads, 32) * 32;
  return std::clamp<int64_t>(threads, 32, 1024);
}

}  // namespace tandem::kernels::cuda
