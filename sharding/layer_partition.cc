#include "sharding/layer_partition.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "sharding/model_stats.h"

namespace tandem::sharding {

using core::LayerKind;

PartitionCosts ComputePartitionCosts(const core::ModelConfig& c) {
  PartitionCosts costs;
  const int64_t dtype_bytes = static_cast<int64_t>(core::DTypeSize(c.torch_dtype));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    // A one-layer range gives that layer's weights and per-sequence state sizes.
    const ModelStats s = RankStats(c, 1, LayerRange{i, i + 1}, false, false);
    costs.layer.push_back(s.weight_bytes + s.ssm_state_bytes_per_sequence +
                          s.conv_state_bytes_per_sequence +
                          s.kv_bytes_per_token * c.max_position_embeddings);
  }
  costs.first_stage_extra = c.hidden_size * dtype_bytes;
  costs.last_stage_extra =
      (c.hidden_size + c.vocab_size * c.hidden_size) * dtype_bytes;  // norm_f + lm_head
  return costs;
}

std::vector<int64_t> StageCosts(const PartitionCosts& costs,
                                const std::vector<LayerRange>& partition) {
  std::vector<int64_t> out;
  for (size_t s = 0; s < partition.size(); ++s) {
    int64_t cost = 0;
    for (int64_t i = partition[s].begin; i < partition[s].end; ++i) cost += costs.layer[i];
    if (s == 0) cost += costs.first_stage_extra;
    if (s + 1 == partition.size()) cost += costs.last_stage_extra;
    out.push_back(cost);
  }
  return out;
}

absl::StatusOr<std::vector<LayerRange>> BalancedPartition(const core::ModelConfig& c, int pp) {
  const int64_t n = c.num_hidden_layers;
  if (pp < 1 || pp > n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pp=", pp, " is not in [1, num_hidden_layers = ", n, "]: every stage needs a layer"));
  }
  const PartitionCosts costs = ComputePartitionCosts(c);
  std::vector<int64_t> prefix(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + costs.layer[i];
  auto range_cost = [&](int64_t begin, int64_t end, int stage) {
    int64_t cost = prefix[end] - prefix[begin];
    if (stage == 0) cost += costs.first_stage_extra;
    if (stage == pp - 1) cost += costs.last_stage_extra;
    return cost;
  };
  // best[s][i]: the smallest achievable maximum stage cost putting layers [0, i) into stages
  // 0..s; cut[s][i]: where stage s begins in that optimum (the earliest such cut on ties).
  constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
  std::vector<std::vector<int64_t>> best(pp, std::vector<int64_t>(n + 1, kInf));
  std::vector<std::vector<int64_t>> cut(pp, std::vector<int64_t>(n + 1, 0));
  for (int64_t i = 1; i <= n; ++i) best[0][i] = range_cost(0, i, 0);
  for (int s = 1; s < pp; ++s) {
    for (int64_t i = s + 1; i <= n; ++i) {
      for (int64_t j = s; j < i; ++j) {
        if (best[s - 1][j] == kInf) continue;
        const int64_t cost = std::max(best[s - 1][j], range_cost(j, i, s));
        if (cost < best[s][i]) {
          best[s][i] = cost;
          cut[s][i] = j;
        }
      }
    }
  }
  std::vector<LayerRange> partition(pp);
  int64_t end = n;
  for (int s = pp - 1; s >= 0; --s) {
    const int64_t begin = s == 0 ? 0 : cut[s][end];
    partition[s] = LayerRange{begin, end};
    end = begin;
  }
  return partition;
}

absl::StatusOr<std::vector<LayerRange>> PartitionFromSizes(const core::ModelConfig& c,
                                                           const std::vector<int64_t>& sizes) {
  std::vector<LayerRange> partition;
  int64_t begin = 0;
  for (int64_t size : sizes) {
    if (size < 1) {
      return absl::InvalidArgumentError(absl::StrCat("layer partition ", absl::StrJoin(sizes, ","),
                                                     ": every stage needs at least one layer"));
    }
    partition.push_back(LayerRange{begin, begin + size});
    begin += size;
  }
  if (begin != c.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer partition ", absl::StrJoin(sizes, ","),
                                                   " has ", begin, " layers but the model has ",
                                                   c.num_hidden_layers));
  }
  return partition;
}

}  // namespace tandem::sharding
