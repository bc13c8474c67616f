#include "model/local_runner.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace tandem::model {
namespace {

constexpr int64_t kBlockSize = 16;

std::vector<int32_t> BlocksFor(int64_t tokens) {
  std::vector<int32_t> blocks((tokens + kBlockSize - 1) / kBlockSize);
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
  return blocks;
}

}  // namespace

absl::Status ValidatePrompt(const core::ModelConfig& config, const std::vector<int32_t>& prompt,
                            int64_t max_new_tokens) {
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", prompt[i], " at position ", i,
                                                     " is outside the vocabulary [0, ",
                                                     config.vocab_size, ")"));
    }
  }
  if (max_new_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be >= 0, got ", max_new_tokens));
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_new_tokens;
  if (total > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", prompt.size(), " tokens) + max_new_tokens (", max_new_tokens, ") = ", total,
        " exceeds the model's maximum of ", config.max_position_embeddings, " positions"));
  }
  return absl::OkStatus();
}

void AllocateForOneSequence(NemotronHModel& model, int64_t max_tokens) {
  StateCapacity capacity;
  capacity.num_slots = 1;
  capacity.block_size = kBlockSize;
  capacity.num_blocks = (max_tokens + kBlockSize - 1) / kBlockSize;
  model.AllocateState(capacity);
}

absl::StatusOr<core::Tensor> PromptLogits(NemotronHModel& model,
                                          const std::vector<int32_t>& prompt) {
  RETURN_IF_ERROR(ValidatePrompt(model.config(), prompt, 0));
  AllocateForOneSequence(model, static_cast<int64_t>(prompt.size()));
  StepPlan plan;
  plan.sequences.push_back({0, BlocksFor(prompt.size()), 0, prompt, LogitsRequest::kAll});
  ASSIGN_OR_RETURN(StepLogits out, model.Step(plan));
  return out.logits;
}

absl::StatusOr<std::vector<int32_t>> Generate(NemotronHModel& model,
                                              const std::vector<int32_t>& prompt,
                                              const GenerateOptions& options) {
  RETURN_IF_ERROR(ValidatePrompt(model.config(), prompt, options.max_new_tokens));
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  AllocateForOneSequence(model, total);
  const std::vector<int32_t> blocks = BlocksFor(total);
  std::vector<int32_t> generated;
  StepPlan plan;
  plan.sequences.push_back({0, blocks, 0, prompt, LogitsRequest::kLast});
  int64_t position = static_cast<int64_t>(prompt.size());
  while (static_cast<int64_t>(generated.size()) < options.max_new_tokens) {
    ASSIGN_OR_RETURN(StepLogits out, model.Step(plan));
    kernels::cpu::SamplingParams sampling = options.sampling;
    sampling.position = position;
    const int32_t token = kernels::cpu::Sample(out.logits.data<float>(), model.config().vocab_size,
                                               sampling, prompt, generated);
    generated.push_back(token);
    if (options.stop_at_eos && token == model.config().eos_token_id) break;
    plan.sequences[0].start_pos = position;
    plan.sequences[0].token_ids = {token};
    ++position;
  }
  return generated;
}

}  // namespace tandem::model
