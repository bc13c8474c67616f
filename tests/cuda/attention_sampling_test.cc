// Paged attention (prefill with cached history, decode, bf16 probabilities) and batched sampling
// on the GPU against the CPU reference. Labelled gpu; skips without a usable device.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/sampling.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/kernels/test_util.h"

namespace tandem::kernels::cuda {
namespace {

using cpu::testing::AllClose;
using testing::DeviceArray;
using testing::DeviceTensor;
using testing::Random;
using testing::Rounded;
using testing::ToDevice;
using testing::Tolerance;

template <typename T>
class CudaAttentionTest : public ::testing::Test {
 protected:
  void SetUp() override { TANDEM_SKIP_WITHOUT_GPU(); }
  std::mt19937 rng_{std::random_device{}()};

  // new_lens[s] new tokens after start[s] cached ones; block ids shuffled over the pool.
  void Run(const std::vector<int32_t>& new_lens, const std::vector<int32_t>& start, int64_t q_heads,
           int64_t kv_heads, int64_t head_dim, bool bf16_probs) {
    const int64_t seqs = static_cast<int64_t>(new_lens.size()), block_size = 16;
    std::vector<int32_t> cu(seqs + 1, 0);
    int64_t max_q = 0, max_blocks = 1;
    for (int64_t s = 0; s < seqs; ++s) {
      cu[s + 1] = cu[s] + new_lens[s];
      max_q = std::max<int64_t>(max_q, new_lens[s]);
      max_blocks =
          std::max<int64_t>(max_blocks, (start[s] + new_lens[s] + block_size - 1) / block_size);
    }
    const int64_t tokens = cu.back(), num_blocks = seqs * max_blocks + 3;
    std::vector<int32_t> pool(num_blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng_);
    std::vector<int32_t> tables(seqs * max_blocks);
    std::copy(pool.begin(), pool.begin() + tables.size(), tables.begin());
    const int64_t cache_n = num_blocks * block_size * kv_heads * head_dim;
    std::vector<float> q = Random<T>(rng_, tokens * q_heads * head_dim, -2.0f, 2.0f);
    std::vector<float> k = Random<T>(rng_, tokens * kv_heads * head_dim);
    std::vector<float> v = Random<T>(rng_, tokens * kv_heads * head_dim);
    std::vector<float> kc = Random<T>(rng_, cache_n), vc = Random<T>(rng_, cache_n);
    auto dcu = ToDevice(cu);
    auto dstart = ToDevice(start);
    auto dtables = ToDevice(tables);
    DeviceTensor<T> dq(q), dk(k), dv(v), dkc(kc), dvc(vc), dout(tokens * q_heads * head_dim);
    dout.Poison();
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    PagedAttentionParams<T> p{dq.get(),       dk.get(),  dv.get(),   dcu->get(), dstart->get(),
                              dtables->get(), dkc.get(), dvc.get(),  dout.get(), seqs,
                              q_heads,        kv_heads,  head_dim,   block_size, num_blocks,
                              max_blocks,     scale,     bf16_probs, tokens,     max_q};
    ASSERT_TRUE(PagedAttention(p, nullptr).ok());
    std::vector<float> ref(tokens * q_heads * head_dim);
    cpu::PagedAttention({q.data(), k.data(), v.data(), cu.data(), start.data(), tables.data(),
                         kc.data(), vc.data(), ref.data(), seqs, q_heads, kv_heads, head_dim,
                         block_size, num_blocks, max_blocks, scale, bf16_probs});
    // bf16 probabilities may round the other way when the softmax sums differ in the last bit.
    const float atol = Tolerance<T>::kAtol * (bf16_probs ? 2.0f : 1.0f);
    EXPECT_TRUE(AllClose(dout.Download(), ref, atol, Tolerance<T>::kRtol))
        << "max_q " << max_q << " head_dim " << head_dim << " bf16_probs " << bf16_probs;
    EXPECT_TRUE(AllClose(dkc.Download(), kc, 0.0f, 0.0f)) << "k cache";
    EXPECT_TRUE(AllClose(dvc.Download(), vc, 0.0f, 0.0f)) << "v cache";
  }
};

struct TypeNames {
  template <typename T>
  static std::string GetName(int) {
    return Tolerance<T>::kName;
  }
};
using ElementTypes = ::testing::Types<float, Bf16>;
TYPED_TEST_SUITE(CudaAttentionTest, ElementTypes, TypeNames);

TYPED_TEST(CudaAttentionTest, PrefillVarlenWithHistory) {
  // One token, a tile tail, chunks continuing cached history, an empty sequence.
  this->Run({1, 17, 40, 0, 3}, {0, 0, 21, 5, 100}, 8, 2, 64, false);
  this->Run({33, 2}, {7, 0}, 4, 4, 128, false);
  this->Run({5, 19}, {0, 3}, 6, 3, 40, false);  // head_dim not a multiple of 32
}

TYPED_TEST(CudaAttentionTest, DecodeManySequences) {
  std::vector<int32_t> ones(37, 1), start(37);
  std::uniform_int_distribution<int32_t> len(0, 300);
  for (int32_t& s : start) s = len(this->rng_);
  this->Run(ones, start, 32, 8, 128, false);
  this->Run({1, 1, 1}, {0, 15, 16}, 4, 1, 72, false);
}

TYPED_TEST(CudaAttentionTest, Bf16Probabilities) {
  this->Run({1, 1}, {40, 3}, 4, 2, 64, true);
  this->Run({20, 3}, {0, 9}, 4, 2, 64, true);
}

class CudaSamplingTest : public ::testing::Test {
 protected:
  void SetUp() override { TANDEM_SKIP_WITHOUT_GPU(); }
  std::mt19937 rng_{std::random_device{}()};
};

TEST_F(CudaSamplingTest, PicksEqualCpuSample) {
  const int64_t vocab = 5003, batch = 8;
  std::vector<cpu::SamplingParams> params(batch);
  params[0] = {};  // greedy
  params[1].temperature = 0.7f;
  params[2].temperature = 1.0f;
  params[2].top_k = 20;
  params[3].temperature = 1.3f;
  params[3].top_p = 0.8f;
  params[4].temperature = 0.9f;
  params[4].min_p = 0.05f;
  params[5].temperature = 1.0f;
  params[5].top_k = 50;
  params[5].top_p = 0.9f;
  params[5].min_p = 0.01f;
  params[5].repetition_penalty = 1.3f;
  params[5].presence_penalty = 0.5f;
  params[5].frequency_penalty = 0.25f;
  params[6].repetition_penalty = 1.5f;  // greedy with penalties
  params[7].temperature = 2.0f;
  params[7].top_k = 1;
  for (int64_t r = 0; r < batch; ++r) {
    params[r].seed = rng_();
    params[r].position = static_cast<int64_t>(rng_() % 1000);
  }
  std::vector<float> logits = cpu::testing::RandomVector(rng_, batch * vocab, -5.0f, 5.0f);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> po{0}, pt, oo{0}, ot;
  std::vector<std::vector<int32_t>> prompts(batch), outputs(batch);
  for (int64_t r = 0; r < batch; ++r) {
    for (int i = 0; i < 30; ++i) prompts[r].push_back(tok(rng_));
    for (int i = 0; i < 20; ++i) outputs[r].push_back(tok(rng_) % 40);  // repeats
    pt.insert(pt.end(), prompts[r].begin(), prompts[r].end());
    ot.insert(ot.end(), outputs[r].begin(), outputs[r].end());
    po.push_back(static_cast<int32_t>(pt.size()));
    oo.push_back(static_cast<int32_t>(ot.size()));
  }
  DeviceTensor<float> dlogits(logits);
  auto dparams = ToDevice(params);
  auto dpo = ToDevice(po), dpt = ToDevice(pt), doo = ToDevice(oo), dot = ToDevice(ot);
  DeviceArray<int32_t> ws(static_cast<int64_t>(SamplingWorkspaceBytes(batch, vocab) / 4));
  ws.Poison();
  DeviceArray<cpu::TokenScore> picks(batch);
  picks.Poison();
  SampleBatchParams p{dlogits.get(), dparams->get(), dpo->get(), dpt->get(), doo->get(), dot->get(),
                      ws.get(),      picks.get(),    batch,      vocab,      0,          true};
  ASSERT_TRUE(SampleBatch(p, nullptr).ok());
  const std::vector<cpu::TokenScore> got = picks.DownloadRaw();
  const std::vector<float> processed = dlogits.Download();
  for (int64_t r = 0; r < batch; ++r) {
    std::vector<float> row(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
    const int32_t want = cpu::Sample(row.data(), vocab, params[r], prompts[r], outputs[r]);
    EXPECT_EQ(got[r].token, want) << "row " << r;
    if (params[r].temperature > 0.0f) {
      std::vector<float> gpu_row(processed.begin() + r * vocab,
                                 processed.begin() + (r + 1) * vocab);
      // -inf where the CPU masked, the same finite values elsewhere (AllClose treats inf == inf).
      for (int64_t i = 0; i < vocab; ++i) {
        ASSERT_EQ(std::isinf(gpu_row[i]), std::isinf(row[i])) << "row " << r << " id " << i;
        if (!std::isinf(row[i])) ASSERT_NEAR(gpu_row[i], row[i], 1e-6f * std::fabs(row[i]));
      }
    }
  }
}

}  // namespace
}  // namespace tandem::kernels::cuda
