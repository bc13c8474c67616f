#include "model/cuda/local_backend.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "kernels/backend_registry.h"
#include "kernels/cpu/sampling.h"

#if TANDEM_MODEL_WITH_CUDA
#include "model/cuda/cuda_model.h"
#endif

namespace tandem::model {

absl::Status CheckBackend(absl::string_view backend) {
  if (backend == "cuda" && !kernels::CudaBackendCompiled()) {
    return absl::NotFoundError(
        "backend cuda is not compiled into this build (configure with -DTANDEM_CUDA=ON)");
  }
  absl::StatusOr<kernels::BackendInfo> info = kernels::BackendRegistry::Builtin().Find(backend);
  if (!info.ok()) {
    return core::Annotate(info.status(), absl::StrCat("backend ", backend));
  }
  return absl::OkStatus();
}

#if TANDEM_MODEL_WITH_CUDA

namespace {

constexpr int64_t kBlockSize = 16;

std::vector<int32_t> BlocksFor(int64_t tokens) {
  std::vector<int32_t> blocks((tokens + kBlockSize - 1) / kBlockSize);
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
  return blocks;
}

absl::StatusOr<std::unique_ptr<cuda::CudaNemotronHModel>> LoadForOneSequence(
    const std::string& dir, const ModelOptions& options, int64_t max_tokens) {
  ASSIGN_OR_RETURN(auto model, cuda::CudaNemotronHModel::Load(dir, options));
  StateCapacity capacity;
  capacity.num_slots = 1;
  capacity.block_size = kBlockSize;
  capacity.num_blocks = (max_tokens + kBlockSize - 1) / kBlockSize;
  RETURN_IF_ERROR(model->AllocateState(capacity));
  return model;
}

}  // namespace

absl::StatusOr<core::Tensor> CudaPromptLogits(const std::string& dir, const ModelOptions& options,
                                              const std::vector<int32_t>& prompt) {
  RETURN_IF_ERROR(CheckBackend("cuda"));
  const int64_t n = static_cast<int64_t>(prompt.size());
  ASSIGN_OR_RETURN(auto model, LoadForOneSequence(dir, options, n));
  RETURN_IF_ERROR(ValidatePrompt(model->config(), prompt, 0));
  StepPlan plan;
  plan.sequences.push_back({0, BlocksFor(n), 0, prompt, LogitsRequest::kAll});
  ASSIGN_OR_RETURN(StepLogits out, model->Step(plan));
  return out.logits;
}

absl::StatusOr<std::vector<int32_t>> CudaGenerate(const std::string& dir,
                                                  const ModelOptions& options,
                                                  const std::vector<int32_t>& prompt,
                                                  const GenerateOptions& generate) {
  RETURN_IF_ERROR(CheckBackend("cuda"));
  const int64_t total = static_cast<int64_t>(prompt.size()) + generate.max_new_tokens;
  ASSIGN_OR_RETURN(auto model, LoadForOneSequence(dir, options, total));
  RETURN_IF_ERROR(ValidatePrompt(model->config(), prompt, generate.max_new_tokens));
  const std::vector<int32_t> blocks = BlocksFor(total);
  std::vector<int32_t> generated;
  StepPlan plan;
  plan.sequences.push_back({0, blocks, 0, prompt, LogitsRequest::kLast});
  int64_t position = static_cast<int64_t>(prompt.size());
  while (static_cast<int64_t>(generated.size()) < generate.max_new_tokens) {
    ASSIGN_OR_RETURN(StepLogits out, model->Step(plan));
    kernels::cpu::SamplingParams sampling = generate.sampling;
    sampling.position = position;
    const int32_t token = kernels::cpu::Sample(out.logits.data<float>(), model->config().vocab_size,
                                               sampling, prompt, generated);
    generated.push_back(token);
    if (generate.stop_at_eos && token == model->config().eos_token_id) break;
    plan.sequences[0].start_pos = position;
    plan.sequences[0].token_ids = {token};
    ++position;
  }
  return generated;
}

#else  // !TANDEM_MODEL_WITH_CUDA

absl::StatusOr<core::Tensor> CudaPromptLogits(const std::string&, const ModelOptions&,
                                              const std::vector<int32_t>&) {
  RETURN_IF_ERROR(CheckBackend("cuda"));
  return absl::InternalError("the CUDA model is not linked into this build");
}

absl::StatusOr<std::vector<int32_t>> CudaGenerate(const std::string&, const ModelOptions&,
                                                  const std::vector<int32_t>&,
                                                  const GenerateOptions&) {
  RETURN_IF_ERROR(CheckBackend("cuda"));
  return absl::InternalError("the CUDA model is not linked into this build");
}

#endif  // TANDEM_MODEL_WITH_CUDA

}  // namespace tandem::model
