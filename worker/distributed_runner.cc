#include "worker/distributed_runner.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace tandem::worker {

namespace pb = ::tandem::worker::v1;

namespace {

void SetBlocks(pb::SequenceStep* s, int64_t tokens, int64_t block_size) {
  s->clear_block_table();
  for (int64_t b = 0; b < (tokens + block_size - 1) / block_size; ++b) {
    s->add_block_table(static_cast<int32_t>(b));
  }
}

int64_t BlockSize(const LocalCluster& cluster) {
  return cluster.infos().at(0).capacity().block_size();
}

}  // namespace

absl::StatusOr<core::Tensor> DistributedPromptLogits(LocalCluster& cluster,
                                                     const std::vector<int32_t>& prompt) {
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const int64_t vocab = cluster.infos().at(0).capabilities().vocab_size();
  pb::StepRequest req;
  pb::SequenceStep* s = req.add_sequences();
  s->set_slot(0);
  SetBlocks(s, static_cast<int64_t>(prompt.size()), BlockSize(cluster));
  s->set_start_pos(0);
  for (int32_t id : prompt) s->add_token_ids(id);
  s->set_logits(pb::LOGITS_ALL);
  s->set_prompt_len(static_cast<int64_t>(prompt.size()));
  ASSIGN_OR_RETURN(pb::StepResponse resp, cluster.Step(req));
  const int64_t t = static_cast<int64_t>(prompt.size());
  if (resp.results_size() != 1 ||
      resp.results(0).all_logits().size() != static_cast<size_t>(t * vocab) * sizeof(float)) {
    return absl::InternalError("the last stage answered without the requested logits");
  }
  core::Tensor out = core::Tensor::Empty(core::DType::kF32, {t, vocab});
  std::memcpy(out.data<float>(), resp.results(0).all_logits().data(), out.nbytes());
  return out;
}

absl::StatusOr<std::vector<int32_t>> DistributedGenerate(LocalCluster& cluster,
                                                         const std::vector<int32_t>& prompt,
                                                         int64_t max_new_tokens, bool stop_at_eos,
                                                         const pb::SamplingParams& sampling) {
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const pb::Capabilities& caps = cluster.infos().at(0).capabilities();
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_new_tokens;
  if (total > caps.max_position_embeddings()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt + max_new_tokens = ", total,
                                                   " exceeds the model's maximum of ",
                                                   caps.max_position_embeddings(), " positions"));
  }
  std::vector<int32_t> generated;
  pb::StepRequest req;
  pb::SequenceStep* s = req.add_sequences();
  s->set_slot(0);
  SetBlocks(s, total, BlockSize(cluster));
  s->set_start_pos(0);
  for (int32_t id : prompt) s->add_token_ids(id);
  s->set_logits(pb::LOGITS_LAST);
  s->set_prompt_len(static_cast<int64_t>(prompt.size()));
  *s->mutable_sampling() = sampling;
  int64_t position = static_cast<int64_t>(prompt.size());
  while (static_cast<int64_t>(generated.size()) < max_new_tokens) {
    ASSIGN_OR_RETURN(pb::StepResponse resp, cluster.Step(req));
    if (resp.results_size() != 1) return absl::InternalError("no result for the sequence");
    const int32_t token = resp.results(0).token_id();
    generated.push_back(token);
    if (stop_at_eos && token == caps.eos_token_id()) break;
    s->set_start_pos(position);
    s->clear_token_ids();
    s->add_token_ids(token);
    ++position;
  }
  return generated;
}

}  // namespace tandem::worker
