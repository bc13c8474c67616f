// Batched token sampling on the GPU with the pipeline and random stream of kernels/cpu/sampling.h:
// penalties, greedy or temperature, top-k, top-p, min-p, then Gumbel-max with the same
// SplitMix64 noise keyed by (seed, position, global token id). Given the same processed logits,
// the pick equals cpu::GumbelMax / cpu::Argmax exactly (same float adds, same double logs).
//
// Filtering (top-k / top-p / min-p) uses exact thresholds found by a 32-step radix search over
// the order-preserving integer keys of the logits (one block per row), so ties at the top-k value
// are all kept as on the CPU; ties exactly at the top-p boundary are all kept too (the CPU keeps a
// prefix of its id-ordered list), the one place where results can differ.
// Rows are full vocabulary rows (vocab_begin offsets ids and noise; filtering sees this row only).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cpu/sampling.h"

namespace tandem::kernels::cuda {

struct SampleBatchParams {
  float* logits = nullptr;  // [batch, vocab] fp32, processed in place (like cpu::Sample)
  const cpu::SamplingParams* params = nullptr;  // [batch] device array
  // Histories for penalties, CSR per row (device); may be nullptr when no row uses penalties.
  const int32_t* prompt_offsets = nullptr;  // [batch + 1]
  const int32_t* prompt_tokens = nullptr;
  const int32_t* output_offsets = nullptr;  // [batch + 1]
  const int32_t* output_tokens = nullptr;
  int32_t* workspace = nullptr;      // [batch, vocab] int32 scratch (SamplingWorkspaceBytes)
  cpu::TokenScore* picks = nullptr;  // [batch] out: token and score (for CombinePicks)
  int64_t batch = 0;
  int64_t vocab = 0;
  int64_t vocab_begin = 0;
  bool any_penalties = false;  // host hint: false skips the penalty kernels
};

size_t SamplingWorkspaceBytes(int64_t batch, int64_t vocab);
absl::Status SampleBatch(const SampleBatchParams& p, void* stream);

}  // namespace tandem::kernels::cuda
