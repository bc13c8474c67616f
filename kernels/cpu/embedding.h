// Embedding lookup, vocabulary-parallel aware.
//
// A rank holds rows [vocab_begin, vocab_begin + vocab_local) of the embedding table. Tokens whose
// id falls outside that range produce a zero row, so summing the outputs of all ranks (an
// all-reduce) yields the full lookup. Ids are CHECKed to be >= 0 (validation of ids against the
// vocabulary is the caller's job: they come from outside). Thread-safe for distinct outputs.
#pragma once

#include <cstdint>

namespace tandem::kernels::cpu {

struct EmbeddingParams {
  const int32_t* ids = nullptr;  // [num_tokens] global token ids
  const float* table = nullptr;  // [vocab_local, hidden] rows for ids vocab_begin..+vocab_local
  float* out = nullptr;          // [num_tokens, hidden]
  int64_t num_tokens = 0;
  int64_t hidden = 0;
  int64_t vocab_begin = 0;
  int64_t vocab_local = 0;
};

void Embedding(const EmbeddingParams& p);

}  // namespace tandem::kernels::cpu
