#include "model/mamba2_mixer.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "core/status.h"
#include "kernels/cpu/conv1d.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/ssd_scan.h"
#include "model/linear_op.h"

namespace tandem::model {

absl::StatusOr<std::unique_ptr<Mamba2Mixer>> Mamba2Mixer::Load(const core::ModelConfig& c,
                                                               const TensorParallel& tp,
                                                               const std::string& prefix,
                                                               WeightLoader& loader) {
  auto m = std::unique_ptr<Mamba2Mixer>(new Mamba2Mixer());
  const int64_t t = tp.size, r = tp.rank;
  const int64_t di = c.d_inner(), gn = c.n_groups * c.ssm_state_size, h = c.mamba_num_heads;
  m->hidden_ = c.hidden_size;
  m->heads_ = h / t;
  m->head_dim_ = c.mamba_head_dim;
  m->groups_ = c.n_groups / t;
  m->state_ = c.ssm_state_size;
  m->kernel_ = c.conv_kernel;
  m->d_inner_ = di / t;
  m->conv_dim_ = m->d_inner_ + 2 * (gn / t);
  m->in_dim_ = m->d_inner_ + m->conv_dim_ + m->heads_;
  m->group_size_ = di / c.n_groups;
  m->eps_ = static_cast<float>(c.layer_norm_epsilon);
  const auto load = [&](const char* name) {
    return loader.Load(c, prefix + name, static_cast<int>(t), static_cast<int>(r));
  };
  ASSIGN_OR_RETURN(m->in_proj_, load(".in_proj.weight"));
  ASSIGN_OR_RETURN(m->conv_w_, load(".conv1d.weight"));
  if (c.use_conv_bias) {
    ASSIGN_OR_RETURN(m->conv_b_, load(".conv1d.bias"));
  }
  ASSIGN_OR_RETURN(m->a_log_, load(".A_log"));
  ASSIGN_OR_RETURN(m->d_, load(".D"));
  ASSIGN_OR_RETURN(m->dt_bias_, load(".dt_bias"));
  ASSIGN_OR_RETURN(m->norm_w_, load(".norm.weight"));
  ASSIGN_OR_RETURN(m->out_proj_, load(".out_proj.weight"));
  return m;
}

void Mamba2Mixer::AllocateState(const StateCapacity& capacity) {
  num_slots_ = capacity.num_slots;
  num_rows_ = capacity.num_slots + capacity.num_snapshots;
  conv_state_ = core::Tensor::Zeros(core::DType::kF32, {num_rows_, conv_dim_ * (kernel_ - 1)});
  ssm_state_ = core::Tensor::Zeros(core::DType::kF32, {num_rows_, heads_ * head_dim_ * state_});
}

void Mamba2Mixer::CopyStateRow(int64_t from_row, int64_t to_row) {
  TANDEM_CHECK(from_row >= 0 && from_row < num_rows_ && to_row >= 0 && to_row < num_rows_)
      << "state rows " << from_row << " -> " << to_row << " of " << num_rows_;
  if (from_row == to_row) return;
  for (core::Tensor* pool : {&conv_state_, &ssm_state_}) {
    const int64_t row = pool->dim(1);
    float* base = pool->data<float>();
    std::memcpy(base + to_row * row, base + from_row * row, row * sizeof(float));
  }
}

uint64_t Mamba2Mixer::state_row_bytes() const {
  return static_cast<uint64_t>(conv_dim_ * (kernel_ - 1) + heads_ * head_dim_ * state_) *
         sizeof(float);
}

uint64_t Mamba2Mixer::weight_bytes() const {
  uint64_t n = 0;
  for (const core::Tensor* w :
       {&in_proj_, &conv_w_, &conv_b_, &a_log_, &d_, &dt_bias_, &norm_w_, &out_proj_}) {
    n += w->nbytes();
  }
  return n;
}

uint64_t Mamba2Mixer::state_bytes() const {
  return static_cast<uint64_t>(num_slots_) * state_row_bytes();
}

absl::Status Mamba2Mixer::Forward(const ForwardContext& ctx, const float* x, float* out) {
  const BatchMetadata& meta = *ctx.meta;
  const int64_t tokens = meta.num_tokens;
  // zxbcdt: [T, in_dim] = z [d_inner] | xBC [conv_dim] | dt [heads] (rank-local widths).
  std::vector<float> zxbcdt(tokens * in_dim_);
  ApplyLinear(ctx, x, in_proj_, zxbcdt.data(), tokens);
  MaybeRoundBf16(ctx.round_bf16, zxbcdt.data(), tokens * in_dim_);

  std::vector<float> xbc(tokens * conv_dim_);
  kernels::cpu::CausalConv1dParams conv;
  conv.x = zxbcdt.data() + d_inner_;
  conv.x_stride = in_dim_;
  conv.weight = conv_w_.data<float>();
  conv.bias = conv_b_.defined() && conv_b_.numel() > 0 ? conv_b_.data<float>() : nullptr;
  conv.cu_seqlens = meta.cu_seqlens.data();
  conv.slots = meta.slots.data();
  conv.has_initial_state = meta.has_initial_state.data();
  conv.conv_state = conv_state_.data<float>();
  conv.out = xbc.data();
  conv.num_seqs = meta.num_seqs;
  conv.channels = conv_dim_;
  conv.kernel = kernel_;
  conv.num_slots = num_slots_;
  kernels::cpu::CausalConv1d(conv);
  MaybeRoundBf16(ctx.round_bf16, xbc.data(), tokens * conv_dim_);

  const int64_t gn = groups_ * state_;
  std::vector<float> y(tokens * d_inner_);
  kernels::cpu::SsmScanParams scan;
  scan.x = xbc.data();
  scan.x_stride = conv_dim_;
  scan.B = xbc.data() + d_inner_;
  scan.b_stride = conv_dim_;
  scan.C = xbc.data() + d_inner_ + gn;
  scan.c_stride = conv_dim_;
  scan.dt = zxbcdt.data() + d_inner_ + conv_dim_;
  scan.dt_stride = in_dim_;
  scan.A_log = a_log_.data<float>();
  scan.D = d_.data<float>();
  scan.dt_bias = dt_bias_.data<float>();
  scan.cu_seqlens = meta.cu_seqlens.data();
  scan.slots = meta.slots.data();
  scan.has_initial_state = meta.has_initial_state.data();
  scan.ssm_state = ssm_state_.data<float>();
  scan.y = y.data();
  scan.num_seqs = meta.num_seqs;
  scan.num_heads = heads_;
  scan.head_dim = head_dim_;
  scan.n_groups = groups_;
  scan.state_size = state_;
  scan.num_slots = num_slots_;
  if (ssd_chunk_size_ > 0) {
    if (ctx.reference_kernels) {
      kernels::cpu::SsdChunkScan(scan, ssd_chunk_size_);
    } else {
      kernels::cpu::SsdChunkScanFast(scan, ssd_chunk_size_);
    }
  } else if (ctx.reference_kernels) {
    kernels::cpu::SsmScan(scan);
  } else {
    kernels::cpu::SsmScanFast(scan);
  }
  MaybeRoundBf16(ctx.round_bf16, y.data(), tokens * d_inner_);

  kernels::cpu::GatedRmsNormParams norm;
  norm.y = y.data();
  norm.z = zxbcdt.data();
  norm.z_stride = in_dim_;
  norm.weight = norm_w_.data<float>();
  norm.out = y.data();
  norm.num_tokens = tokens;
  norm.dim = d_inner_;
  norm.group_size = group_size_;
  norm.eps = eps_;
  kernels::cpu::GatedRmsNorm(norm);
  MaybeRoundBf16(ctx.round_bf16, y.data(), tokens * d_inner_);

  ApplyLinear(ctx, y.data(), out_proj_, out, tokens);
  return absl::OkStatus();
}

}  // namespace tandem::model
