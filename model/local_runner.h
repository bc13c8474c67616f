// Runs one sequence at a time on a whole-model shard, with the trivial allocation a single
// sequence needs (slot 0, blocks 0..n-1). It serves `tandem logits` / `tandem generate` and the
// tests; the coordinator does real allocation for many sequences.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "kernels/cpu/sampling.h"
#include "model/nemotron_h_model.h"

namespace tandem::model {

// Validates a prompt for `config`: non-empty, ids in [0, vocab), and prompt + max_new_tokens
// within max_position_embeddings. InvalidArgument names the problem.
[[nodiscard]] absl::Status ValidatePrompt(const core::ModelConfig& config,
                                          const std::vector<int32_t>& prompt,
                                          int64_t max_new_tokens);

// Allocates state for one sequence of up to `max_tokens` tokens (block size 16).
void AllocateForOneSequence(NemotronHModel& model, int64_t max_tokens);

// Logits of every prompt position, [T, vocab] f32 (fresh sequence in slot 0).
[[nodiscard]] absl::StatusOr<core::Tensor> PromptLogits(NemotronHModel& model,
                                                        const std::vector<int32_t>& prompt);

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  kernels::cpu::SamplingParams sampling;  // temperature 0 = greedy; `position` is set per token
  bool stop_at_eos = true;
};

// Prefills the prompt, then decodes one token per step until max_new_tokens or EOS.
[[nodiscard]] absl::StatusOr<std::vector<int32_t>> Generate(NemotronHModel& model,
                                                            const std::vector<int32_t>& prompt,
                                                            const GenerateOptions& options);

}  // namespace tandem::model
