#include "sharding/shard_plan.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status.h"
#include "sharding/layer_partition.h"

namespace tandem::sharding {
namespace {

using core::LayerKind;
using core::ModelConfig;
using core::Shape;

// Block `r` of `t` equal blocks of [offset, offset + total).
IndexRange Block(int64_t offset, int64_t total, int t, int r) {
  const int64_t n = total / t;
  return {offset + r * n, offset + (r + 1) * n};
}

TensorSlice Replicated(std::string name, Shape shape) {
  TensorSlice s;
  s.name = std::move(name);
  s.full_shape = shape;
  s.local_shape = std::move(shape);
  return s;
}

TensorSlice Split(std::string name, Shape shape, SplitKind kind, std::vector<IndexRange> ranges) {
  TensorSlice s;
  s.name = std::move(name);
  s.full_shape = shape;
  s.split = kind;
  int64_t n = 0;
  for (const IndexRange& r : ranges) n += r.size();
  s.local_shape = std::move(shape);
  s.local_shape[kind == SplitKind::kRows ? 0 : 1] = n;
  s.ranges = std::move(ranges);
  return s;
}

// x | B | C channel ranges of the conv1d / conv state (index space of xBC).
std::vector<IndexRange> ConvChannels(const ModelConfig& c, int t, int r) {
  const int64_t di = c.d_inner(), gn = c.n_groups * c.ssm_state_size;
  return {Block(0, di, t, r), Block(di, gn, t, r), Block(di + gn, gn, t, r)};
}

absl::StatusOr<TensorSlice> MixerSlice(const ModelConfig& c, int64_t layer,
                                       absl::string_view tensor, const std::string& name, int t,
                                       int r) {
  const int64_t H = c.hidden_size, di = c.d_inner(), gn = c.n_groups * c.ssm_state_size;
  const int64_t h = c.mamba_num_heads;
  const LayerKind kind = c.layers[layer];
  const auto wrong = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", name, " does not exist in layer ", layer, " (a '",
                     std::string(1, static_cast<char>(kind)), "' layer of the hybrid pattern)"));
  };
  switch (kind) {
    case LayerKind::kMamba:
      if (tensor == "in_proj.weight") {
        return Split(name, {c.in_proj_dim(), H}, SplitKind::kRows,
                     {Block(0, di, t, r), Block(di, di, t, r), Block(2 * di, gn, t, r),
                      Block(2 * di + gn, gn, t, r), Block(2 * di + 2 * gn, h, t, r)});
      }
      if (tensor == "conv1d.weight") {
        return Split(name, {c.conv_dim(), 1, c.conv_kernel}, SplitKind::kRows,
                     ConvChannels(c, t, r));
      }
      if (tensor == "conv1d.bias" && c.use_conv_bias) {
        return Split(name, {c.conv_dim()}, SplitKind::kRows, ConvChannels(c, t, r));
      }
      if (tensor == "A_log" || tensor == "D" || tensor == "dt_bias") {
        return Split(name, {h}, SplitKind::kRows, {Block(0, h, t, r)});
      }
      if (tensor == "norm.weight") return Split(name, {di}, SplitKind::kRows, {Block(0, di, t, r)});
      if (tensor == "out_proj.weight") {
        return Split(name, {H, di}, SplitKind::kColumns, {Block(0, di, t, r)});
      }
      return wrong();
    case LayerKind::kAttention:
      if (tensor == "q_proj.weight") {
        return Split(name, {c.q_dim(), H}, SplitKind::kRows, {Block(0, c.q_dim(), t, r)});
      }
      if (tensor == "k_proj.weight" || tensor == "v_proj.weight") {
        return Split(name, {c.kv_dim(), H}, SplitKind::kRows, {Block(0, c.kv_dim(), t, r)});
      }
      if (tensor == "o_proj.weight") {
        return Split(name, {H, c.q_dim()}, SplitKind::kColumns, {Block(0, c.q_dim(), t, r)});
      }
      return wrong();
    case LayerKind::kMlp:
      if (tensor == "up_proj.weight") {
        return Split(name, {c.intermediate_size, H}, SplitKind::kRows,
                     {Block(0, c.intermediate_size, t, r)});
      }
      if (tensor == "down_proj.weight") {
        return Split(name, {H, c.intermediate_size}, SplitKind::kColumns,
                     {Block(0, c.intermediate_size, t, r)});
      }
      return wrong();
  }
  return wrong();
}

absl::Status CheckTp(const ModelConfig& c, int tp, int tp_rank) {
  ParallelConfig p{tp, 1};
  RETURN_IF_ERROR(p.Validate(c));
  if (tp_rank < 0 || tp_rank >= tp) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp_rank ", tp_rank, " is outside [0, ", tp, ")"));
  }
  return absl::OkStatus();
}

std::vector<StateSlice> LayerStates(const ModelConfig& c, int64_t layer, int t, int r) {
  std::vector<StateSlice> out;
  const auto add = [&](StateKind kind, Shape full, std::vector<IndexRange> ranges) {
    StateSlice s;
    s.layer = layer;
    s.kind = kind;
    s.full_shape = full;
    int64_t n = 0;
    for (const IndexRange& rg : ranges) n += rg.size();
    s.local_shape = std::move(full);
    s.local_shape[0] = n;
    s.ranges = std::move(ranges);
    out.push_back(std::move(s));
  };
  if (c.layers[layer] == LayerKind::kMamba) {
    add(StateKind::kConv, {c.conv_dim(), c.conv_kernel - 1}, ConvChannels(c, t, r));
    add(StateKind::kSsm, {c.mamba_num_heads, c.mamba_head_dim, c.ssm_state_size},
        {Block(0, c.mamba_num_heads, t, r)});
  } else if (c.layers[layer] == LayerKind::kAttention) {
    add(StateKind::kKv, {c.num_key_value_heads, c.head_dim},
        {Block(0, c.num_key_value_heads, t, r)});
  }
  return out;
}

}  // namespace

absl::StatusOr<TensorSlice> SliceTensor(const ModelConfig& c, absl::string_view name, int tp,
                                        int tp_rank) {
  RETURN_IF_ERROR(CheckTp(c, tp, tp_rank));
  const std::string n(name);
  const int64_t H = c.hidden_size;
  if (name == "backbone.embeddings.weight" || name == "backbone.embedding.weight" ||
      name == "lm_head.weight") {
    return Split(n, {c.vocab_size, H}, SplitKind::kRows, {Block(0, c.vocab_size, tp, tp_rank)});
  }
  if (name == "backbone.norm_f.weight") return Replicated(n, {H});
  constexpr absl::string_view kLayers = "backbone.layers.";
  if (absl::StartsWith(name, kLayers)) {
    std::vector<absl::string_view> parts =
        absl::StrSplit(name.substr(kLayers.size()), absl::MaxSplits('.', 1));
    int64_t layer = -1;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &layer) && layer >= 0 &&
        layer < c.num_hidden_layers) {
      if (parts[1] == "norm.weight") return Replicated(n, {H});
      constexpr absl::string_view kMixer = "mixer.";
      if (absl::StartsWith(parts[1], kMixer)) {
        return MixerSlice(c, layer, parts[1].substr(kMixer.size()), n, tp, tp_rank);
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " is not a tensor of this ",
                                                 c.num_hidden_layers, "-layer nemotron_h model"));
}

int64_t RankShard::weight_elements() const {
  int64_t n = 0;
  for (const TensorSlice& t : tensors) n += t.local_elements();
  return n;
}

namespace {
int64_t StateElements(const std::vector<StateSlice>& states, StateKind kind) {
  int64_t n = 0;
  for (const StateSlice& s : states) {
    if (s.kind == kind) n += s.local_elements();
  }
  return n;
}
}  // namespace

int64_t RankShard::ssm_state_elements_per_sequence() const {
  return StateElements(states, StateKind::kSsm);
}
int64_t RankShard::conv_state_elements_per_sequence() const {
  return StateElements(states, StateKind::kConv);
}
int64_t RankShard::kv_elements_per_token() const {
  return 2 * StateElements(states, StateKind::kKv);
}

absl::StatusOr<ShardPlan> ShardPlan::Create(const ModelConfig& c, const ParallelConfig& parallel,
                                            std::vector<LayerRange> partition) {
  RETURN_IF_ERROR(parallel.Validate(c));
  if (partition.empty()) {
    ASSIGN_OR_RETURN(partition, BalancedPartition(c, parallel.pp));
  }
  RETURN_IF_ERROR(ValidatePartition(partition, parallel.pp, c.num_hidden_layers));
  ShardPlan plan;
  plan.parallel_ = parallel;
  plan.partition_ = std::move(partition);
  for (int rank = 0; rank < parallel.world_size(); ++rank) {
    RankShard s;
    s.rank = rank;
    s.stage = parallel.StageOf(rank);
    s.tp_rank = parallel.TpRankOf(rank);
    s.layers = plan.partition_[s.stage];
    s.first_stage = s.stage == 0;
    s.last_stage = s.stage == parallel.pp - 1;
    s.vocab = Block(0, c.vocab_size, parallel.tp, s.tp_rank);
    std::vector<std::string> names;
    if (s.first_stage) names.push_back("backbone.embeddings.weight");
    for (const core::ExpectedTensor& e : core::ExpectedTensors(c)) {
      constexpr absl::string_view kLayers = "backbone.layers.";
      if (!absl::StartsWith(e.name, kLayers)) continue;
      int64_t layer = -1;
      std::vector<absl::string_view> parts =
          absl::StrSplit(absl::string_view(e.name).substr(kLayers.size()), '.');
      if (!absl::SimpleAtoi(parts[0], &layer)) continue;
      if (s.layers.Contains(layer)) names.push_back(e.name);
    }
    if (s.last_stage) {
      names.push_back("backbone.norm_f.weight");
      if (!c.tie_word_embeddings) {
        names.push_back("lm_head.weight");
      } else if (!s.first_stage) {
        names.push_back("backbone.embeddings.weight");  // the tied head
      }
    }
    for (const std::string& name : names) {
      ASSIGN_OR_RETURN(TensorSlice slice, SliceTensor(c, name, parallel.tp, s.tp_rank));
      s.tensors.push_back(std::move(slice));
    }
    for (int64_t layer = s.layers.begin; layer < s.layers.end; ++layer) {
      for (StateSlice& st : LayerStates(c, layer, parallel.tp, s.tp_rank)) {
        s.states.push_back(std::move(st));
      }
    }
    plan.ranks_.push_back(std::move(s));
  }
  return plan;
}

}  // namespace tandem::sharding
