// One sequence through a LocalCluster, as model/local_runner.h does in one process: the
// launcher side of `tandem logits --tp N --pp M` and `tandem generate --tp N --pp M`.
// Slot 0 and blocks 0..n-1 (the trivial allocation of one sequence). Not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "worker/local_cluster.h"

namespace tandem::worker {

// Logits of every prompt position, [T, vocab] f32.
[[nodiscard]] absl::StatusOr<core::Tensor> DistributedPromptLogits(
    LocalCluster& cluster, const std::vector<int32_t>& prompt);

// Samples with `sampling` (default: greedy) one token per step; stops at EOS when stop_at_eos.
[[nodiscard]] absl::StatusOr<std::vector<int32_t>> DistributedGenerate(
    LocalCluster& cluster, const std::vector<int32_t>& prompt, int64_t max_new_tokens,
    bool stop_at_eos, const ::tandem::worker::v1::SamplingParams& sampling = {});

}  // namespace tandem::worker
