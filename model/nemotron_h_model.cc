#include "model/nemotron_h_model.h"

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/rms_norm.h"
#include "model/attention_mixer.h"
#include "model/batch_metadata.h"
#include "model/linear_op.h"
#include "model/load_progress.h"
#include "model/mamba2_mixer.h"
#include "model/mlp_mixer.h"
#include "model/plan_validation.h"
#include "model/weight_loader.h"

namespace tandem::model {

absl::StatusOr<std::unique_ptr<NemotronHModel>> NemotronHModel::Load(const std::string& dir,
                                                                     const ModelOptions& options) {
  ASSIGN_OR_RETURN(
      core::ModelConfig config,
      core::ModelConfig::FromFile((std::filesystem::path(dir) / "config.json").string()));
  ASSIGN_OR_RETURN(core::Checkpoint checkpoint, core::Checkpoint::Open(dir));
  return Load(config, checkpoint, options);
}

absl::StatusOr<std::unique_ptr<NemotronHModel>> NemotronHModel::Load(
    const core::ModelConfig& config, const core::Checkpoint& checkpoint,
    const ModelOptions& options) {
  RETURN_IF_ERROR(core::ValidateCheckpoint(config, checkpoint));
  auto m = std::unique_ptr<NemotronHModel>(new NemotronHModel());
  m->config_ = config;
  m->options_ = options;
  ModelOptions& o = m->options_;
  const TensorParallel& tp = o.tp;
  if (o.layer_end < 0) o.layer_end = config.num_hidden_layers;
  if (o.layer_begin < 0 || o.layer_begin >= o.layer_end || o.layer_end > config.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer range [", o.layer_begin, ", ",
                                                   o.layer_end, ") is not inside [0, ",
                                                   config.num_hidden_layers, ")"));
  }
  if (tp.size < 1 || tp.rank < 0 || tp.rank >= tp.size || (tp.size > 1 && !tp.reducer)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad tensor-parallel rank ", tp.rank, " of ", tp.size));
  }
  for (auto [what, value] : {std::pair{"n_groups", config.n_groups},
                             {"num_key_value_heads", config.num_key_value_heads},
                             {"num_attention_heads", config.num_attention_heads},
                             {"mamba_num_heads", config.mamba_num_heads},
                             {"intermediate_size", config.intermediate_size},
                             {"vocab_size", config.vocab_size}}) {
    if (value % tp.size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tp=", tp.size, " does not divide ", what, "=", value));
    }
  }
  ASSIGN_OR_RETURN(const std::string embedding_name, core::EmbeddingName(checkpoint));
  ASSIGN_OR_RETURN(core::TensorInfo embedding_info, checkpoint.Info(embedding_name));
  m->round_bf16_ = embedding_info.dtype == core::DType::kBF16;
  m->vocab_local_ = config.vocab_size / tp.size;
  m->vocab_begin_ = tp.rank * m->vocab_local_;

  WeightLoader loader(&checkpoint);
  LoadProgress progress(o.layer_end - o.layer_begin, std::chrono::seconds(5));
  const auto load = [&](absl::string_view name) {
    return loader.Load(config, name, tp.size, tp.rank);
  };
  if (m->is_first_stage()) {
    ASSIGN_OR_RETURN(m->embedding_, load(embedding_name));
  }
  for (int64_t i = o.layer_begin; i < o.layer_end; ++i) {
    const std::string prefix = absl::StrCat("backbone.layers.", i);
    ASSIGN_OR_RETURN(core::Tensor norm, load(prefix + ".norm.weight"));
    m->norms_.push_back(std::move(norm));
    const std::string mixer = prefix + ".mixer";
    switch (config.layers[i]) {
      case core::LayerKind::kMamba: {
        ASSIGN_OR_RETURN(auto mamba, Mamba2Mixer::Load(config, tp, mixer, loader));
        mamba->set_ssd_chunk_size(o.ssd_chunk_size);
        m->mixers_.push_back(std::move(mamba));
        break;
      }
      case core::LayerKind::kAttention: {
        ASSIGN_OR_RETURN(auto attention, AttentionMixer::Load(config, tp, mixer, loader));
        m->mixers_.push_back(std::move(attention));
        break;
      }
      case core::LayerKind::kMlp: {
        ASSIGN_OR_RETURN(auto mlp, MlpMixer::Load(config, tp, mixer, loader));
        m->mixers_.push_back(std::move(mlp));
        break;
      }
    }
    progress.Update(i + 1 - o.layer_begin, loader.bytes_read(), loader.tensors_loaded());
  }
  if (m->is_last_stage()) {
    ASSIGN_OR_RETURN(m->norm_f_, load("backbone.norm_f.weight"));
    ASSIGN_OR_RETURN(m->lm_head_, load("lm_head.weight"));
  }
  m->checkpoint_bytes_read_ = loader.bytes_read();
  progress.Finish(loader.bytes_read(), loader.tensors_loaded());
  return m;
}

bool NemotronHModel::has_attention() const {
  for (int64_t i = options_.layer_begin; i < options_.layer_end; ++i) {
    if (config_.layers[i] == core::LayerKind::kAttention) return true;
  }
  return false;
}

void NemotronHModel::AllocateState(const StateCapacity& capacity) {
  capacity_ = capacity;
  snapshot_positions_.assign(capacity.num_snapshots, -1);
  for (auto& mixer : mixers_) mixer->AllocateState(capacity);
}

uint64_t NemotronHModel::weight_bytes() const {
  uint64_t n = embedding_.nbytes() + norm_f_.nbytes() + lm_head_.nbytes();
  for (const auto& norm : norms_) n += norm.nbytes();
  for (const auto& mixer : mixers_) n += mixer->weight_bytes();
  return n;
}

uint64_t NemotronHModel::state_bytes() const {
  uint64_t n = 0;
  for (const auto& mixer : mixers_) n += mixer->state_bytes();
  return n;
}

uint64_t NemotronHModel::snapshot_entry_bytes() const {
  uint64_t n = 0;
  for (const auto& mixer : mixers_) n += mixer->state_row_bytes();
  return n;
}

uint64_t NemotronHModel::snapshot_bytes() const {
  return static_cast<uint64_t>(capacity_.num_snapshots) * snapshot_entry_bytes();
}

absl::Status NemotronHModel::ValidatePlan(const StepPlan& plan) const {
  return ValidateStepPlan(config_, capacity_, options_.layer_begin, options_.layer_end, plan,
                          snapshot_positions_);
}

ForwardContext NemotronHModel::Context(const BatchMetadata& meta) const {
  ForwardContext ctx;
  ctx.meta = &meta;
  ctx.round_bf16 = round_bf16_;
  ctx.reference_kernels = options_.reference_kernels;
  return ctx;
}

absl::Status NemotronHModel::Embed(const BatchMetadata& meta, float* hidden) {
  kernels::cpu::EmbeddingParams p;
  p.ids = meta.token_ids.data();
  p.table = embedding_.data<float>();
  p.out = hidden;
  p.num_tokens = meta.num_tokens;
  p.hidden = config_.hidden_size;
  p.vocab_begin = vocab_begin_;
  p.vocab_local = vocab_local_;
  kernels::cpu::Embedding(p);
  return options_.tp.AllReduce(hidden, meta.num_tokens * config_.hidden_size);
}

absl::Status NemotronHModel::RunLayers(const BatchMetadata& meta, float* hidden) {
  const ForwardContext ctx = Context(meta);
  const int64_t n = meta.num_tokens * config_.hidden_size;
  // Restores first, for every sequence (a snapshot another sequence saves into in this step is
  // read before it is overwritten).
  for (int64_t s = 0; s < meta.num_seqs; ++s) {
    if (meta.restore_snapshot.empty() || meta.restore_snapshot[s] < 0) continue;
    for (auto& mixer : mixers_) {
      mixer->CopyStateRow(capacity_.num_slots + meta.restore_snapshot[s], meta.slots[s]);
    }
  }
  std::vector<float> x(n), y(n);
  for (size_t i = 0; i < mixers_.size(); ++i) {
    kernels::cpu::RmsNormParams norm;
    norm.x = hidden;
    norm.weight = norms_[i].data<float>();
    norm.out = x.data();
    norm.num_tokens = meta.num_tokens;
    norm.hidden = config_.hidden_size;
    norm.eps = static_cast<float>(config_.layer_norm_epsilon);
    kernels::cpu::RmsNorm(norm);
    MaybeRoundBf16(round_bf16_, x.data(), n);
    RETURN_IF_ERROR(mixers_[i]->Forward(ctx, x.data(), y.data()));
    RETURN_IF_ERROR(options_.tp.AllReduce(y.data(), n));
    MaybeRoundBf16(round_bf16_, y.data(), n);
    kernels::cpu::AddInPlace(hidden, y.data(), n);
    MaybeRoundBf16(round_bf16_, hidden, n);
  }
  for (int64_t s = 0; s < meta.num_seqs; ++s) {
    if (meta.save_snapshot.empty() || meta.save_snapshot[s] < 0) continue;
    const int32_t k = meta.save_snapshot[s];
    for (auto& mixer : mixers_) mixer->CopyStateRow(meta.slots[s], capacity_.num_slots + k);
    snapshot_positions_[k] = meta.start_pos[s] + (meta.cu_seqlens[s + 1] - meta.cu_seqlens[s]);
  }
  return absl::OkStatus();
}

absl::StatusOr<StepLogits> NemotronHModel::Head(const StepPlan& plan, const float* hidden) {
  const int64_t h = config_.hidden_size;
  StepLogits result;
  std::vector<int64_t> rows;  // token rows of `hidden` that need logits
  int64_t token = 0;
  for (const SequenceStep& s : plan.sequences) {
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    result.row_begin.push_back(static_cast<int64_t>(rows.size()));
    if (s.logits == LogitsRequest::kAll) {
      for (int64_t i = 0; i < n; ++i) rows.push_back(token + i);
    } else if (s.logits == LogitsRequest::kLast) {
      rows.push_back(token + n - 1);
    }
    result.row_count.push_back(static_cast<int64_t>(rows.size()) - result.row_begin.back());
    token += n;
  }
  const int64_t r = static_cast<int64_t>(rows.size());
  result.logits = core::Tensor::Empty(core::DType::kF32, {r, vocab_local_});
  if (r == 0) return result;
  std::vector<float> x(r * h);
  for (int64_t i = 0; i < r; ++i) {
    std::copy(hidden + rows[i] * h, hidden + (rows[i] + 1) * h, x.begin() + i * h);
  }
  kernels::cpu::RmsNormParams norm;
  norm.x = x.data();
  norm.weight = norm_f_.data<float>();
  norm.out = x.data();
  norm.num_tokens = r;
  norm.hidden = h;
  norm.eps = static_cast<float>(config_.layer_norm_epsilon);
  kernels::cpu::RmsNorm(norm);
  MaybeRoundBf16(round_bf16_, x.data(), r * h);
  BatchMetadata none;
  ApplyLinear(Context(none), x.data(), lm_head_, result.logits.data<float>(), r);
  MaybeRoundBf16(round_bf16_, result.logits.data<float>(), r * vocab_local_);
  return result;
}

absl::StatusOr<StepLogits> NemotronHModel::Step(const StepPlan& plan) {
  if (!is_first_stage() || !is_last_stage()) {
    return absl::FailedPreconditionError(
        "Step needs a shard holding every layer; use the "
        "pipeline pieces Embed / RunLayers / Head");
  }
  RETURN_IF_ERROR(ValidatePlan(plan));
  const BatchMetadata meta = BatchMetadata::FromPlan(plan);
  std::vector<float> hidden(meta.num_tokens * config_.hidden_size);
  RETURN_IF_ERROR(Embed(meta, hidden.data()));
  RETURN_IF_ERROR(RunLayers(meta, hidden.data()));
  return Head(plan, hidden.data());
}

}  // namespace tandem::model
