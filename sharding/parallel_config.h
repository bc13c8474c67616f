// ParallelConfig: the topology of one model replica, tp tensor-parallel ranks in each of pp
// pipeline stages. A plain value type (no communicators, no global rank); thread-compatible.
//
// Ranks are stage-major: rank = stage * tp + tp_rank, so the tp ranks of one stage are
// consecutive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/model_config.h"

namespace tandem::sharding {

struct ParallelConfig {
  int tp = 1;
  int pp = 1;

  int world_size() const { return tp * pp; }
  int Rank(int stage, int tp_rank) const { return stage * tp + tp_rank; }
  int StageOf(int rank) const { return rank / tp; }
  int TpRankOf(int rank) const { return rank % tp; }
  bool operator==(const ParallelConfig&) const = default;
  std::string ToString() const;  // "tp=2 pp=3"

  // InvalidArgument naming the reason and the valid choices unless tp >= 1 divides every
  // dimension split across tensor-parallel ranks (n_groups, num_key_value_heads,
  // mamba_num_heads, num_attention_heads, intermediate_size, vocab_size) and
  // 1 <= pp <= num_hidden_layers.
  [[nodiscard]] absl::Status Validate(const core::ModelConfig& config) const;
};

// The tensor-parallel sizes `config` allows, ascending (always contains 1).
std::vector<int> ValidTpSizes(const core::ModelConfig& config);

}  // namespace tandem::sharding
