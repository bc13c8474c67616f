// Causal GQA attention over a paged KV cache, one op for prefill chunks and decode tokens.
//
// Sequence s has n_s = cu_seqlens[s+1] - cu_seqlens[s] new tokens (rows of the packed q/k/v) at
// positions start_pos[s] .. start_pos[s] + n_s - 1. The op first writes their k/v into the cache
// (position p lives in block block_tables[s * max_blocks_per_seq + p / block_size], row
// p % block_size), then each new token at position p attends over cache positions [0, p]:
//   out[t, i, :] = sum_u softmax_u(scale * q[t, i, :] . k[u, i / (num_q_heads/num_kv_heads), :])
//   v[u, ...]
// Softmax in fp32 (max-subtracted, double sums in the reference). No positional encoding.
// When bf16_probs, probabilities are rounded to bf16 before the weighted sum of v (HF eager
// attention in bf16). PagedAttentionFast threads over (sequence, kv head) and must equal
// PagedAttention up to fp32 rounding.
// Not thread-safe for calls writing the same blocks; block ids of one call's sequences must not
// overlap at the written positions.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

struct PagedAttentionParams {
  const float* q = nullptr;               // [num_tokens, num_q_heads, head_dim]
  const float* k = nullptr;               // [num_tokens, num_kv_heads, head_dim] new keys
  const float* v = nullptr;               // [num_tokens, num_kv_heads, head_dim] new values
  const int32_t* cu_seqlens = nullptr;    // [num_seqs + 1], cu_seqlens[0] = 0
  const int32_t* start_pos = nullptr;     // [num_seqs] tokens already in each sequence's cache
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq] block ids
  float* k_cache = nullptr;               // [num_blocks, block_size, num_kv_heads, head_dim]
  float* v_cache = nullptr;               // [num_blocks, block_size, num_kv_heads, head_dim]
  float* out = nullptr;                   // [num_tokens, num_q_heads, head_dim]
  int64_t num_seqs = 0;
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_size = 16;
  int64_t num_blocks = 0;
  int64_t max_blocks_per_seq = 0;
  float scale = 0.0f;  // usually 1/sqrt(head_dim)
  bool bf16_probs = false;
};

void PagedAttention(const PagedAttentionParams& p);
void PagedAttentionFast(const PagedAttentionParams& p);

}  // namespace tandem::kernels::cpu
