// Causal depthwise conv1d: direct formula, chunked prefill == one-shot, decode update == prefill.
#include "kernels/cpu/conv1d.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/elementwise.h"
#include "tests/kernels/test_util.h"

namespace tandem::kernels::cpu {
namespace {

using testing::AllClose;
using testing::BitEqual;
using testing::CuSeqlens;
using testing::Poisoned;
using testing::RandomSplit;
using testing::RandomVector;

constexpr int64_t kC = 6, kK = 4, kSlotStride = kC * (kK - 1) + 5, kXStride = kC + 3;

struct ConvSetup {
  std::vector<float> weight, bias;
  std::vector<float> pool;  // [num_slots, kSlotStride]
  int64_t num_slots;
};

ConvSetup MakeSetup(std::mt19937& rng, int64_t num_slots) {
  return {RandomVector(rng, kC * kK), RandomVector(rng, kC),
          RandomVector(rng, num_slots * kSlotStride, -5, 5), num_slots};
}

void RunPrefill(ConvSetup& st, const std::vector<float>& x, const std::vector<int32_t>& lengths,
                const std::vector<int32_t>& slots, const std::vector<uint8_t>& has_init,
                std::vector<float>& out) {
  const std::vector<int32_t> cu = CuSeqlens(lengths);
  CausalConv1dParams p;
  p.x = x.data();
  p.weight = st.weight.data();
  p.bias = st.bias.data();
  p.cu_seqlens = cu.data();
  p.slots = slots.data();
  p.has_initial_state = has_init.data();
  p.conv_state = st.pool.data();
  p.out = out.data();
  p.num_seqs = static_cast<int64_t>(lengths.size());
  p.channels = kC;
  p.kernel = kK;
  p.num_slots = st.num_slots;
  p.x_stride = kXStride;
  p.slot_stride = kSlotStride;
  CausalConv1d(p);
}

TEST(CausalConv1dTest, FreshSequencesMatchDirectFormulaAndKeepLastRawRows) {
  std::mt19937 rng(10);
  ConvSetup st = MakeSetup(rng, 4);
  const std::vector<int32_t> lengths{7, 1, 2, 5};
  const int64_t T = 15;
  const std::vector<float> x = RandomVector(rng, T * kXStride);
  std::vector<float> out = Poisoned(T * kC);
  const std::vector<int32_t> slots{2, 0, 3, 1};
  RunPrefill(st, x, lengths, slots, {0, 0, 0, 0}, out);
  const std::vector<int32_t> cu = CuSeqlens(lengths);
  std::vector<float> expected(T * kC);
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int64_t t = cu[s]; t < cu[s + 1]; ++t) {
      for (int64_t c = 0; c < kC; ++c) {
        float acc = st.bias[c];
        for (int64_t k = 0; k < kK; ++k) {
          const int64_t src = t - (kK - 1) + k;
          if (src >= cu[s]) acc += st.weight[c * kK + k] * x[src * kXStride + c];
        }
        expected[t * kC + c] = Silu(acc);
      }
    }
    for (int64_t c = 0; c < kC; ++c) {
      for (int64_t j = 0; j < kK - 1; ++j) {
        const int64_t src = cu[s + 1] - (kK - 1) + j;
        const float want = src >= cu[s] ? x[src * kXStride + c] : 0.0f;
        EXPECT_EQ(st.pool[slots[s] * kSlotStride + c * (kK - 1) + j], want) << s << " " << c;
      }
    }
  }
  EXPECT_TRUE(AllClose(out, expected, 1e-6f, 1e-6f));
}

TEST(CausalConv1dTest, ChunkedPrefillOfRandomSizesEqualsOneShot) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 5; ++trial) {
    const std::vector<int32_t> lengths{13, 2, 9};
    const int64_t T = 24;
    const std::vector<float> x = RandomVector(rng, T * kXStride);
    const std::vector<int32_t> cu = CuSeqlens(lengths);
    const std::vector<int32_t> slots{1, 4, 2};
    ConvSetup one = MakeSetup(rng, 5);
    ConvSetup chunked = one;
    std::vector<float> want = Poisoned(T * kC);
    RunPrefill(one, x, lengths, slots, {0, 0, 0}, want);

    // Every sequence is fed in chunks of 1..4 tokens (some shorter than K-1); each call batches
    // the next chunk of every unfinished sequence.
    std::vector<std::vector<int32_t>> parts;
    for (int32_t n : lengths) parts.push_back(RandomSplit(rng, n, 4));
    std::vector<size_t> next(lengths.size(), 0);
    std::vector<int32_t> done(lengths.size(), 0);
    std::vector<float> got = Poisoned(T * kC);
    while (true) {
      std::vector<float> bx;
      std::vector<int32_t> blen, bslot, bstart;
      std::vector<uint8_t> binit;
      for (size_t s = 0; s < lengths.size(); ++s) {
        if (next[s] == parts[s].size()) continue;
        const int32_t n = parts[s][next[s]++];
        bx.insert(bx.end(), x.begin() + (cu[s] + done[s]) * kXStride,
                  x.begin() + (cu[s] + done[s] + n) * kXStride);
        blen.push_back(n);
        bslot.push_back(slots[s]);
        binit.push_back(done[s] > 0);
        bstart.push_back(cu[s] + done[s]);
        done[s] += n;
      }
      if (blen.empty()) break;
      int32_t total = 0;
      for (int32_t n : blen) total += n;
      std::vector<float> bout = Poisoned(total * kC);
      RunPrefill(chunked, bx, blen, bslot, binit, bout);
      int32_t row = 0;
      for (size_t b = 0; b < blen.size(); ++b) {
        std::copy(bout.begin() + row * kC, bout.begin() + (row + blen[b]) * kC,
                  got.begin() + bstart[b] * kC);
        row += blen[b];
      }
    }
    EXPECT_TRUE(BitEqual(got, want)) << "trial " << trial;
    EXPECT_TRUE(BitEqual(chunked.pool, one.pool)) << "trial " << trial;
  }
}

TEST(CausalConv1dTest, UpdateEqualsOneTokenPrefill) {
  std::mt19937 rng(12);
  ConvSetup a = MakeSetup(rng, 3);
  ConvSetup b = a;
  const std::vector<int32_t> slots{2, 0};
  const std::vector<float> x = RandomVector(rng, 2 * kXStride);
  std::vector<float> want = Poisoned(2 * kC), got = Poisoned(2 * kC);
  RunPrefill(a, x, {1, 1}, slots, {1, 1}, want);
  CausalConv1dUpdateParams p;
  p.x = x.data();
  p.weight = b.weight.data();
  p.bias = b.bias.data();
  p.slots = slots.data();
  p.conv_state = b.pool.data();
  p.out = got.data();
  p.batch = 2;
  p.channels = kC;
  p.kernel = kK;
  p.num_slots = 3;
  p.x_stride = kXStride;
  p.slot_stride = kSlotStride;
  CausalConv1dUpdate(p);
  EXPECT_TRUE(BitEqual(got, want));
  EXPECT_TRUE(BitEqual(b.pool, a.pool));
}

}  // namespace
}  // namespace tandem::kernels::cpu
