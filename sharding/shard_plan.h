// ShardPlan: which part of every checkpoint tensor and of every per-sequence state tensor each
// rank of a TP x PP layout holds (model spec §4). Pure values and functions; thread-safe.
//
// Tensor-parallel rank r of t takes (di = d_inner, GN = n_groups * ssm_state_size, h = Mamba
// heads):
//   Mamba in_proj.weight   rows, per segment:  z [r*di/t ..) | x [di + r*di/t ..) |
//                          B [2di + r*GN/t ..) | C [2di+GN + r*GN/t ..) | dt [2di+2GN + r*h/t ..)
//   Mamba conv1d.weight/.bias  rows (xBC index space): x [r*di/t ..) | B [di + r*GN/t ..) |
//                          C [di+GN + r*GN/t ..)
//   A_log, D, dt_bias      rows [r*h/t ..);  mixer.norm.weight rows [r*di/t ..)
//   out_proj.weight        columns [r*di/t ..)
//   q_proj                 rows by query heads; k_proj/v_proj rows by KV heads
//   o_proj.weight          columns by query heads
//   up_proj                rows [r*ffn/t ..); down_proj columns [r*ffn/t ..)
//   embeddings, lm_head    rows [r*V/t ..) (vocab-parallel)
//   layers.i.norm, norm_f  replicated
// so rank r owns Mamba heads [r*h/t, (r+1)*h/t) with exactly the B/C groups they use. A slice is a
// list of index ranges of dimension 0 (kRows) or 1 (kColumns), concatenated in order.
// Per-sequence state: conv state [conv_dim, K-1] by the x|B|C channel ranges, SSM state
// [h, P, N] by head, KV cache [Hkv, head_dim] per token by KV head.
// Pipeline stage s holds layers partition[s]; stage 0 the embedding, the last stage norm_f and
// lm_head.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "sharding/layer_range.h"
#include "sharding/parallel_config.h"

namespace tandem::sharding {

struct IndexRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const IndexRange&) const = default;
};

enum class SplitKind { kReplicated, kRows, kColumns };

struct TensorSlice {
  std::string name;
  core::Shape full_shape;
  SplitKind split = SplitKind::kReplicated;
  std::vector<IndexRange> ranges;  // of dim 0 (kRows) or dim 1 (kColumns); empty when replicated
  core::Shape local_shape;
  int64_t local_elements() const { return core::NumElements(local_shape); }
};

enum class StateKind { kConv, kSsm, kKv };

// A per-sequence (kConv, kSsm) or per-token (kKv, for K and for V each) state tensor of one layer.
struct StateSlice {
  int64_t layer = 0;
  StateKind kind = StateKind::kConv;
  core::Shape full_shape;          // conv [conv_dim, K-1], ssm [h, P, N], kv [Hkv, head_dim]
  std::vector<IndexRange> ranges;  // of dim 0
  core::Shape local_shape;
  int64_t local_elements() const { return core::NumElements(local_shape); }
};

struct RankShard {
  int rank = 0;
  int stage = 0;
  int tp_rank = 0;
  LayerRange layers;
  IndexRange vocab;  // this rank's vocabulary rows
  bool first_stage = false;
  bool last_stage = false;
  std::vector<TensorSlice> tensors;  // checkpoint order: embedding, layers, norm_f, lm_head
  std::vector<StateSlice> states;
  int64_t weight_elements() const;
  int64_t ssm_state_elements_per_sequence() const;
  int64_t conv_state_elements_per_sequence() const;
  int64_t kv_elements_per_token() const;  // K and V together
};

// The slice of tensor `name` (a full checkpoint name, e.g. "backbone.layers.3.mixer.in_proj.weight"
// or "backbone.embedding.weight") held by TP rank `tp_rank` of `tp`. InvalidArgument for a name
// that is not a tensor of `config` or a tp that does not divide the split dimensions.
[[nodiscard]] absl::StatusOr<TensorSlice> SliceTensor(const core::ModelConfig& config,
                                                      absl::string_view name, int tp, int tp_rank);

class ShardPlan {
 public:
  // Validates `parallel` (ParallelConfig::Validate: reason and valid choices) and `partition`
  // (pp contiguous non-empty stages; empty = BalancedPartition).
  [[nodiscard]] static absl::StatusOr<ShardPlan> Create(const core::ModelConfig& config,
                                                        const ParallelConfig& parallel,
                                                        std::vector<LayerRange> partition = {});

  const ParallelConfig& parallel() const { return parallel_; }
  const std::vector<LayerRange>& partition() const { return partition_; }
  const std::vector<RankShard>& ranks() const { return ranks_; }
  const RankShard& rank(int r) const { return ranks_.at(r); }

 private:
  ParallelConfig parallel_;
  std::vector<LayerRange> partition_;
  std::vector<RankShard> ranks_;
};

}  // namespace tandem::sharding
