#include "kernels/cpu/embedding.h"

#include <cstring>

#include "core/logging.h"

namespace tandem::kernels::cpu {

void Embedding(const EmbeddingParams& p) {
  TANDEM_CHECK(p.ids != nullptr && p.table != nullptr && p.out != nullptr);
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t id = p.ids[t];
    TANDEM_CHECK(id >= 0) << "token id " << id;
    float* row = p.out + t * p.hidden;
    const int64_t local = id - p.vocab_begin;
    if (local >= 0 && local < p.vocab_local) {
      std::memcpy(row, p.table + local * p.hidden, sizeof(float) * p.hidden);
    } else {
      std::memset(row, 0, sizeof(float) * p.hidden);
    }
  }
}

}  // namespace tandem::kernels::cpu
