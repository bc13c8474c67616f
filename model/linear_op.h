// y = x W^T through the reference or the fast CPU kernel, as the forward context asks.
#pragma once

#include "core/tensor.h"
#include "kernels/cpu/linear.h"
#include "model/mixer.h"

namespace tandem::model {

// x: [num_tokens, in], w: [out, in] f32 tensor, y: [num_tokens, out].
inline void ApplyLinear(const ForwardContext& ctx, const float* x, const core::Tensor& w, float* y,
                        int64_t num_tokens) {
  kernels::cpu::LinearParams p;
  p.x = x;
  p.w = w.data<float>();
  p.y = y;
  p.num_tokens = num_tokens;
  p.out_features = w.dim(0);
  p.in_features = w.dim(1);
  if (ctx.reference_kernels) {
    kernels::cpu::Linear(p);
  } else {
    kernels::cpu::LinearFast(p);
  }
}

}  // namespace tandem::model
