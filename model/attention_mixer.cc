#include "model/attention_mixer.h"

#include <cmath>
#include <vector>

#include "core/status.h"
#include "kernels/cpu/paged_attention.h"
#include "model/linear_op.h"

namespace tandem::model {

absl::StatusOr<std::unique_ptr<AttentionMixer>> AttentionMixer::Load(const core::ModelConfig& c,
                                                                     const TensorParallel& tp,
                                                                     const std::string& prefix,
                                                                     WeightLoader& loader) {
  auto m = std::unique_ptr<AttentionMixer>(new AttentionMixer());
  const int64_t t = tp.size, dh = c.head_dim;
  m->hidden_ = c.hidden_size;
  m->q_heads_ = c.num_attention_heads / t;
  m->kv_heads_ = c.num_key_value_heads / t;
  m->head_dim_ = dh;
  const auto load = [&](const char* name) {
    return loader.Load(c, prefix + name, tp.size, tp.rank);
  };
  ASSIGN_OR_RETURN(m->q_proj_, load(".q_proj.weight"));
  ASSIGN_OR_RETURN(m->k_proj_, load(".k_proj.weight"));
  ASSIGN_OR_RETURN(m->v_proj_, load(".v_proj.weight"));
  ASSIGN_OR_RETURN(m->o_proj_, load(".o_proj.weight"));
  return m;
}

void AttentionMixer::AllocateState(const StateCapacity& capacity) {
  capacity_ = capacity;
  const core::Shape shape = {capacity.num_blocks, capacity.block_size, kv_heads_, head_dim_};
  k_cache_ = core::Tensor::Zeros(core::DType::kF32, shape);
  v_cache_ = core::Tensor::Zeros(core::DType::kF32, shape);
}

uint64_t AttentionMixer::weight_bytes() const {
  return q_proj_.nbytes() + k_proj_.nbytes() + v_proj_.nbytes() + o_proj_.nbytes();
}

uint64_t AttentionMixer::state_bytes() const { return k_cache_.nbytes() + v_cache_.nbytes(); }

absl::Status AttentionMixer::Forward(const ForwardContext& ctx, const float* x, float* out) {
  const BatchMetadata& meta = *ctx.meta;
  const int64_t tokens = meta.num_tokens;
  const int64_t qw = q_heads_ * head_dim_, kvw = kv_heads_ * head_dim_;
  std::vector<float> q(tokens * qw), k(tokens * kvw), v(tokens * kvw), o(tokens * qw);
  ApplyLinear(ctx, x, q_proj_, q.data(), tokens);
  ApplyLinear(ctx, x, k_proj_, k.data(), tokens);
  ApplyLinear(ctx, x, v_proj_, v.data(), tokens);
  MaybeRoundBf16(ctx.round_bf16, q.data(), tokens * qw);
  MaybeRoundBf16(ctx.round_bf16, k.data(), tokens * kvw);
  MaybeRoundBf16(ctx.round_bf16, v.data(), tokens * kvw);

  kernels::cpu::PagedAttentionParams p;
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.cu_seqlens = meta.cu_seqlens.data();
  p.start_pos = meta.start_pos.data();
  p.block_tables = meta.block_tables.data();
  p.k_cache = k_cache_.data<float>();
  p.v_cache = v_cache_.data<float>();
  p.out = o.data();
  p.num_seqs = meta.num_seqs;
  p.num_q_heads = q_heads_;
  p.num_kv_heads = kv_heads_;
  p.head_dim = head_dim_;
  p.block_size = capacity_.block_size;
  p.num_blocks = capacity_.num_blocks;
  p.max_blocks_per_seq = meta.max_blocks_per_seq;
  p.scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  p.bf16_probs = ctx.round_bf16;
  if (ctx.reference_kernels) {
    kernels::cpu::PagedAttention(p);
  } else {
    kernels::cpu::PagedAttentionFast(p);
  }
  MaybeRoundBf16(ctx.round_bf16, o.data(), tokens * qw);
  ApplyLinear(ctx, o.data(), o_proj_, out, tokens);
  return absl::OkStatus();
}

}  // namespace tandem::model
