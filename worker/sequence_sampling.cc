#include "worker/sequence_sampling.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::worker {
namespace {

absl::Status Invalid(const char* field, float value, const char* rule) {
  return absl::InvalidArgumentError(absl::StrCat("sampling.", field, ": ", value, " ", rule));
}

}  // namespace

absl::StatusOr<kernels::cpu::SamplingParams> SequenceSamplingParams(
    const ::tandem::worker::v1::SequenceStep& seq, int64_t vocab_size) {
  const auto& sp = seq.sampling();
  kernels::cpu::SamplingParams p;
  if (!std::isfinite(sp.temperature()) || sp.temperature() < 0.0f) {
    return Invalid("temperature", sp.temperature(), "must be finite and >= 0");
  }
  p.temperature = sp.temperature() < kMinTemperature ? 0.0f : sp.temperature();
  if (sp.top_k() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_k: ", sp.top_k(), " must be >= 0 (0 = off)"));
  }
  p.top_k = sp.top_k() >= vocab_size ? 0 : sp.top_k();
  if (!(sp.top_p() >= 0.0f && sp.top_p() <= 1.0f)) {
    return Invalid("top_p", sp.top_p(), "is outside [0, 1] (0 = off)");
  }
  p.top_p = sp.top_p() > 0.0f ? sp.top_p() : 1.0f;
  if (!(sp.min_p() >= 0.0f && sp.min_p() <= 1.0f)) {
    return Invalid("min_p", sp.min_p(), "is outside [0, 1]");
  }
  p.min_p = sp.min_p();
  if (!std::isfinite(sp.repetition_penalty()) || sp.repetition_penalty() < 0.0f) {
    return Invalid("repetition_penalty", sp.repetition_penalty(), "must be finite and >= 0");
  }
  p.repetition_penalty = sp.repetition_penalty() > 0.0f ? sp.repetition_penalty() : 1.0f;
  if (!std::isfinite(sp.presence_penalty())) {
    return Invalid("presence_penalty", sp.presence_penalty(), "must be finite");
  }
  p.presence_penalty = sp.presence_penalty();
  if (!std::isfinite(sp.frequency_penalty())) {
    return Invalid("frequency_penalty", sp.frequency_penalty(), "must be finite");
  }
  p.frequency_penalty = sp.frequency_penalty();
  p.seed = sp.seed();
  p.position = seq.start_pos() + seq.token_ids_size();
  return p;
}

int32_t SequenceTopLogprobs(const ::tandem::worker::v1::SequenceStep& seq) {
  return std::clamp(seq.top_logprobs(), 0, kMaxTopLogprobs);
}

}  // namespace tandem::worker
