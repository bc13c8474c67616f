// Vocabulary-parallel embedding gather: rows outside [vocab_begin, vocab_begin + vocab_local)
// are zero, so an all-reduce over ranks gives the full lookup.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

template <typename T>
__global__ void EmbeddingKernel(EmbeddingParams<T> p) {
  const int64_t t = blockIdx.x;
  const int64_t local = static_cast<int64_t>(p.ids[t]) - p.vocab_begin;
  const bool in_range = local >= 0 && local < p.vocab_local;
  T* out = p.out + t * p.hidden;
  const T* row = p.table + (in_range ? local : 0) * p.hidden;
  for (int64_t c = threadIdx.x; c < p.hidden; c += blockDim.x) {
    if (in_range) {
      out[c] = row[c];
    } else {
      Store(out + c, 0.0f);
    }
  }
}

}  // namespace

template <typename T>
absl::Status Embedding(const EmbeddingParams<T>& p, void* stream) {
  if (p.num_tokens < 0 || p.hidden <= 0 || p.vocab_begin < 0 || p.vocab_local < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Embedding: num_tokens=", p.num_tokens, " hidden=", p.hidden,
                     " vocab_begin=", p.vocab_begin, " vocab_local=", p.vocab_local));
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  if (p.num_tokens > 0x7fffffff) return absl::InvalidArgumentError("Embedding: too many tokens");
  const int threads = static_cast<int>(RowThreads(p.hidden, 4));
  EmbeddingKernel<T><<<static_cast<unsigned>(p.num_tokens), threads, 0, AsStream(stream)>>>(p);
  return LastLaunch("Embedding");
}
template absl::Status Embedding<float>(const EmbeddingParams<float>&, void*);
template absl::Status Embedding<Bf16>(const EmbeddingParams<Bf16>&, void*);

}  // namespace tandem::kernels::cuda
