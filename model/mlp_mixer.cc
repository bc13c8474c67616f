#include "model/mlp_mixer.h"

#include <vector>

#include "core/status.h"
#include "kernels/cpu/elementwise.h"
#include "model/linear_op.h"

namespace tandem::model {

absl::StatusOr<std::unique_ptr<MlpMixer>> MlpMixer::Load(const core::ModelConfig& c,
                                                         const TensorParallel& tp,
                                                         const std::string& prefix,
                                                         WeightLoader& loader) {
  auto m = std::unique_ptr<MlpMixer>(new MlpMixer());
  ASSIGN_OR_RETURN(m->up_, loader.Load(c, prefix + ".up_proj.weight", tp.size, tp.rank));
  ASSIGN_OR_RETURN(m->down_, loader.Load(c, prefix + ".down_proj.weight", tp.size, tp.rank));
  return m;
}

absl::Status MlpMixer::Forward(const ForwardContext& ctx, const float* x, float* out) {
  const int64_t tokens = ctx.meta->num_tokens, ffn = up_.dim(0);
  std::vector<float> hidden(tokens * ffn);
  ApplyLinear(ctx, x, up_, hidden.data(), tokens);
  MaybeRoundBf16(ctx.round_bf16, hidden.data(), tokens * ffn);
  kernels::cpu::ReluSquaredInPlace(hidden.data(), tokens * ffn);
  MaybeRoundBf16(ctx.round_bf16, hidden.data(), tokens * ffn);
  ApplyLinear(ctx, hidden.data(), down_, out, tokens);
  return absl::OkStatus();
}

}  // namespace tandem::model
