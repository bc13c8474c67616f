// The sampling parameters of one planned sequence, checked and bounded by what they can mean.
//
// A plan comes from a coordinator that validated its requests already; the worker checks again
// (defence in depth) because one sequence's parameters must never break a step for the others.
// A parameter the sampler cannot use fails that sequence only (INVALID_ARGUMENT naming the field);
// parameters with an equivalent bounded meaning are normalised: top_k >= the vocabulary is "no
// top-k", a positive temperature below kMinTemperature is greedy (its limit), top_p 0 means 1,
// repetition_penalty 0 means 1, top_logprobs is clamped to [0, kMaxTopLogprobs]. The work of
// sampling a row is therefore bounded by the vocabulary, never by a number in the plan.
// Pure functions, thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/cpu/sampling.h"
#include "tandem/worker/v1/worker.pb.h"

namespace tandem::worker {

// Below this a temperature divides logits into overflow (+-inf); the sampler treats it as 0.
inline constexpr float kMinTemperature = 1e-6f;
inline constexpr int32_t kMaxTopLogprobs = 20;

// `vocab_size`: the whole vocabulary (all TP ranks' slices).
[[nodiscard]] absl::StatusOr<kernels::cpu::SamplingParams> SequenceSamplingParams(
    const ::tandem::worker::v1::SequenceStep& seq, int64_t vocab_size);

// seq.top_logprobs() clamped to [0, kMaxTopLogprobs].
int32_t SequenceTopLogprobs(const ::tandem::worker::v1::SequenceStep& seq);

}  // namespace tandem::worker
