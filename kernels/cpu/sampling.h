// Token sampling from a row of logits, layout-invariant (DESIGN.md §2 step 3).
//
// Order of operations in Sample (Hugging Face / vLLM conventions):
//   1. penalties (ApplyPenalties): repetition (tokens in prompt or output: logit > 0 ? logit / r :
//      logit * r), then presence (- presence once per token in output) and frequency
//      (- frequency * count in output);
//   2. greedy when temperature == 0: argmax of the penalised logits, ties -> lowest id;
//   3. otherwise temperature: logits / temperature;
//   4. top-k (keep the k largest; ties at the k-th value are all kept), then top-p (keep the
//      smallest set of most likely tokens whose probability, renormalised over what top-k kept,
//      reaches top_p; always at least one), then min-p (drop tokens with probability < min_p * the
//      largest probability); dropped logits become -inf;
//   5. Gumbel-max: pick argmax_i(logit_i + g(seed, position, i)) with g = -log(-log(u)) and u a
//      counter-based uniform in (0, 1) hashed from (seed, position, token id), ties -> lowest id.
// Because every token's noise depends only on (seed, position, token id), a rank holding a vocab
// shard can compute GumbelMax over its shard and the global pick is CombinePicks over ranks: the
// same token whatever the vocabulary split.
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace tandem::kernels::cpu {

struct SamplingParams {
  float temperature = 0.0f;         // 0: greedy
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  float presence_penalty = 0.0f;    // 0: off
  float frequency_penalty = 0.0f;   // 0: off
  uint64_t seed = 0;
  int64_t position = 0;  // position of the token being sampled (keys the random stream)
};

struct TokenScore {
  int32_t token = -1;  // -1: no candidate (all logits -inf)
  float score = 0.0f;
};

// Penalises logits [n] holding global ids vocab_begin .. vocab_begin + n - 1; history ids outside
// that range are ignored. prompt_tokens / output_tokens may repeat ids (counts matter for
// frequency).
void ApplyPenalties(float* logits, int64_t n, int64_t vocab_begin, const SamplingParams& params,
                    absl::Span<const int32_t> prompt_tokens,
                    absl::Span<const int32_t> output_tokens);

// Top-k, top-p, min-p over a full vocabulary row (in that order); dropped entries become -inf.
void ApplyTopKTopPMinP(float* logits, int64_t n, int32_t top_k, float top_p, float min_p);

// Building blocks for filtering a vocabulary split across ranks (top-k and min-p are exact from
// per-rank reductions; ApplyTopKTopPMinP is built from them):
//   top-k: each rank sends TopN(its logits, k); TopKThreshold over the union gives the k-th largest
//     value, and every rank applies MaskBelow with it.
//   min-p: the all-reduced max logit gives MinPThreshold; every rank applies MaskBelow.
// TopKThreshold is -inf (keep everything) when top_k <= 0 or there are fewer than top_k values;
// MinPThreshold is -inf when min_p <= 0 or max_logit is -inf.
double TopKThreshold(absl::Span<const float> values, int32_t top_k);
double MinPThreshold(float max_logit, float min_p);
// logits[i] = -inf where logits[i] < threshold.
void MaskBelow(float* logits, int64_t n, double threshold);

// The Gumbel noise of one token: -log(-log(u)), u in (0, 1) from a SplitMix64-style hash.
float GumbelNoise(uint64_t seed, int64_t position, int32_t token);

// argmax over logits [n] (global ids from vocab_begin); ties -> lowest id; -inf entries skipped.
TokenScore Argmax(const float* logits, int64_t n, int64_t vocab_begin);
// argmax of logits[i] + GumbelNoise(seed, position, vocab_begin + i); -inf entries skipped.
TokenScore GumbelMax(const float* logits, int64_t n, int64_t vocab_begin, uint64_t seed,
                     int64_t position);
// The better of two picks (higher score, ties -> lower id; token -1 loses): the cross-shard reduce.
TokenScore CombinePicks(TokenScore a, TokenScore b);

// The whole pipeline on a full row; `logits` [vocab_size] is modified in place (processed logits).
int32_t Sample(float* logits, int64_t vocab_size, const SamplingParams& params,
               absl::Span<const int32_t> prompt_tokens, absl::Span<const int32_t> output_tokens);

// out[i] = logits[i] - logsumexp(logits) (double accumulation). out may alias logits.
void LogSoftmax(const float* logits, float* out, int64_t n);
// The k largest values of values [n] (global ids from vocab_begin), descending, ties -> lower id.
std::vector<TokenScore> TopN(const float* values, int64_t n, int64_t vocab_begin, int64_t k);

}  // namespace tandem::kernels::cpu
