// Paged causal GQA attention against a dense naive attention: one-shot, and chunked prefill
// mixed with decode steps, with shuffled block ids and two block sizes.
#include "kernels/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/paged_attention_internal.h"
#include "tests/kernels/test_util.h"

namespace tandem::kernels::cpu {
namespace {

using testing::AllClose;
using testing::Poisoned;
using testing::RandomSplit;
using testing::RandomVector;

constexpr int64_t kHq = 6, kHkv = 2, kDh = 8;
// fp32 dot products and softmax against a double-precision dense attention.
constexpr float kAtol = 2e-5f, kRtol = 1e-5f;

struct Seq {
  std::vector<float> q, k, v;  // [L, kHq, kDh], [L, kHkv, kDh] x2
  int32_t len;
};

Seq MakeSeq(std::mt19937& rng, int32_t len) {
  return {RandomVector(rng, len * kHq * kDh, -2, 2), RandomVector(rng, len * kHkv * kDh, -2, 2),
          RandomVector(rng, len * kHkv * kDh), len};
}

std::vector<float> DenseAttention(const Seq& s, float scale) {
  std::vector<float> out(s.len * kHq * kDh);
  for (int32_t t = 0; t < s.len; ++t) {
    for (int64_t i = 0; i < kHq; ++i) {
      const int64_t h = i / (kHq / kHkv);
      std::vector<double> w(t + 1);
      double mx = -1e300, sum = 0;
      for (int32_t u = 0; u <= t; ++u) {
        double dot = 0;
        for (int64_t d = 0; d < kDh; ++d) {
          dot += double(s.q[(t * kHq + i) * kDh + d]) * s.k[(u * kHkv + h) * kDh + d];
        }
        w[u] = dot * scale;
        mx = std::max(mx, w[u]);
      }
      for (double& x : w) sum += (x = std::exp(x - mx));
      for (int64_t d = 0; d < kDh; ++d) {
        double acc = 0;
        for (int32_t u = 0; u <= t; ++u) acc += w[u] / sum * s.v[(u * kHkv + h) * kDh + d];
        out[(t * kHq + i) * kDh + d] = float(acc);
      }
    }
  }
  return out;
}

// A cache pool with each sequence given shuffled, out-of-order block ids.
struct Cache {
  int64_t block_size, num_blocks, max_blocks;
  std::vector<int32_t> tables;  // [num_seqs, max_blocks]
  std::vector<float> k, v;
};

Cache MakeCache(std::mt19937& rng, const std::vector<Seq>& seqs, int64_t block_size) {
  Cache c;
  c.block_size = block_size;
  c.max_blocks = 0;
  int64_t needed = 0;
  for (const Seq& s : seqs) {
    const int64_t n = (s.len + block_size - 1) / block_size;
    c.max_blocks = std::max(c.max_blocks, n);
    needed += n;
  }
  c.num_blocks = needed + 3;
  std::vector<int32_t> ids(c.num_blocks);
  for (int32_t i = 0; i < c.num_blocks; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  c.tables.assign(seqs.size() * c.max_blocks, -1);
  size_t next = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int64_t b = 0; b < (seqs[s].len + block_size - 1) / block_size; ++b) {
      c.tables[s * c.max_blocks + b] = ids[next++];
    }
  }
  c.k = Poisoned(c.num_blocks * block_size * kHkv * kDh);
  c.v = Poisoned(c.num_blocks * block_size * kHkv * kDh);
  return c;
}

// One call over pieces (sequence index, start position, token count); returns the output rows
// scattered back to per-sequence outputs.
void RunPieces(bool fast, bool bf16_probs, Cache& c, const std::vector<Seq>& seqs,
               const std::vector<std::array<int32_t, 3>>& pieces,
               std::vector<std::vector<float>>& outs) {
  std::vector<float> q, k, v;
  std::vector<int32_t> cu{0}, start, tables;
  for (const auto& [s, pos, n] : pieces) {
    const Seq& seq = seqs[s];
    q.insert(q.end(), seq.q.begin() + pos * kHq * kDh, seq.q.begin() + (pos + n) * kHq * kDh);
    k.insert(k.end(), seq.k.begin() + pos * kHkv * kDh, seq.k.begin() + (pos + n) * kHkv * kDh);
    v.insert(v.end(), seq.v.begin() + pos * kHkv * kDh, seq.v.begin() + (pos + n) * kHkv * kDh);
    cu.push_back(cu.back() + n);
    start.push_back(pos);
    tables.insert(tables.end(), c.tables.begin() + s * c.max_blocks,
                  c.tables.begin() + (s + 1) * c.max_blocks);
  }
  std::vector<float> out = Poisoned(cu.back() * kHq * kDh);
  PagedAttentionParams p;
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.cu_seqlens = cu.data();
  p.start_pos = start.data();
  p.block_tables = tables.data();
  p.k_cache = c.k.data();
  p.v_cache = c.v.data();
  p.out = out.data();
  p.num_seqs = static_cast<int64_t>(pieces.size());
  p.num_q_heads = kHq;
  p.num_kv_heads = kHkv;
  p.head_dim = kDh;
  p.block_size = c.block_size;
  p.num_blocks = c.num_blocks;
  p.max_blocks_per_seq = c.max_blocks;
  p.scale = 1.0f / std::sqrt(float(kDh));
  p.bf16_probs = bf16_probs;
  if (fast) {
    PagedAttentionFast(p);
  } else {
    PagedAttention(p);
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto& [s, pos, n] = pieces[i];
    std::copy(out.begin() + cu[i] * kHq * kDh, out.begin() + cu[i + 1] * kHq * kDh,
              outs[s].begin() + pos * kHq * kDh);
  }
}

class PagedAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, bool>> {};

TEST_P(PagedAttentionTest, OneShotMatchesDense) {
  const auto [block_size, fast] = GetParam();
  std::mt19937 rng(30 + block_size);
  const std::vector<Seq> seqs{MakeSeq(rng, 20), MakeSeq(rng, 1), MakeSeq(rng, 33)};
  Cache c = MakeCache(rng, seqs, block_size);
  std::vector<std::vector<float>> outs;
  for (const Seq& s : seqs) outs.push_back(Poisoned(s.len * kHq * kDh));
  RunPieces(fast, false, c, seqs, {{0, 0, 20}, {1, 0, 1}, {2, 0, 33}}, outs);
  for (size_t s = 0; s < seqs.size(); ++s) {
    EXPECT_TRUE(
        AllClose(outs[s], DenseAttention(seqs[s], 1.0f / std::sqrt(float(kDh))), kAtol, kRtol))
        << "sequence " << s;
  }
}

TEST_P(PagedAttentionTest, ChunkedPrefillThenDecodeMatchesDense) {
  const auto [block_size, fast] = GetParam();
  std::mt19937 rng(40 + block_size);
  const std::vector<Seq> seqs{MakeSeq(rng, 29), MakeSeq(rng, 7), MakeSeq(rng, 40)};
  Cache c = MakeCache(rng, seqs, block_size);
  std::vector<std::vector<float>> outs;
  std::vector<std::vector<int32_t>> parts;
  for (const Seq& s : seqs) {
    outs.push_back(Poisoned(s.len * kHq * kDh));
    // Prefill chunks of up to 9 tokens for most of the sequence, then single decode tokens.
    std::vector<int32_t> p = RandomSplit(rng, s.len - 4, 9);
    for (int i = 0; i < 4; ++i) p.push_back(1);
    parts.push_back(p);
  }
  std::vector<size_t> next(seqs.size(), 0);
  std::vector<int32_t> done(seqs.size(), 0);
  while (true) {
    std::vector<std::array<int32_t, 3>> pieces;
    for (size_t s = 0; s < seqs.size(); ++s) {
      if (next[s] == parts[s].size()) continue;
      const int32_t n = parts[s][next[s]++];
      pieces.push_back({int32_t(s), done[s], n});
      done[s] += n;
    }
    if (pieces.empty()) break;
    RunPieces(fast, false, c, seqs, pieces, outs);
  }
  for (size_t s = 0; s < seqs.size(); ++s) {
    EXPECT_TRUE(
        AllClose(outs[s], DenseAttention(seqs[s], 1.0f / std::sqrt(float(kDh))), kAtol, kRtol))
        << "sequence " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(BlockSizesAndPaths, PagedAttentionTest,
                         ::testing::Combine(::testing::Values(4, 16), ::testing::Bool()));

TEST(PagedAttentionBf16Test, FastMatchesReferenceWithBf16Probabilities) {
  std::mt19937 rng(50);
  const std::vector<Seq> seqs{MakeSeq(rng, 25), MakeSeq(rng, 3)};
  Cache c1 = MakeCache(rng, seqs, 4);
  Cache c2 = c1;
  std::vector<std::vector<float>> ref{Poisoned(25 * kHq * kDh), Poisoned(3 * kHq * kDh)};
  std::vector<std::vector<float>> fast = ref;
  RunPieces(false, true, c1, seqs, {{0, 0, 25}, {1, 0, 3}}, ref);
  RunPieces(true, true, c2, seqs, {{0, 0, 25}, {1, 0, 3}}, fast);
  // A probability on a bf16 rounding boundary may round differently (2^-9 relative).
  for (size_t s = 0; s < seqs.size(); ++s) EXPECT_TRUE(AllClose(fast[s], ref[s], 5e-3f, 0.0f));
  // bf16 probabilities change the result measurably against the unrounded dense attention.
  EXPECT_FALSE(
      AllClose(ref[0], DenseAttention(seqs[0], 1.0f / std::sqrt(float(kDh))), kAtol, kRtol));
}

// Both builds of the fast path (portable, AVX2+FMA where the CPU has it) against the reference
// PagedAttention on head dims with and without a tail past 8 lanes: two sequences, one decoding a
// token after 40 cached positions, one prefilling a 13-token chunk after 5.
TEST(PagedAttentionIsaTest, BothIsasMatchReferenceOnOddHeadDims) {
  std::mt19937 rng(60);
  std::vector<CpuIsa> isas{CpuIsa::kPortable};
  if (CpuIsaSupported(CpuIsa::kAvx2Fma)) isas.push_back(CpuIsa::kAvx2Fma);
  const int64_t Hq = 4, Hkv = 2, block = 16, max_blocks = 4, num_blocks = 8;
  const std::vector<int32_t> cu{0, 1, 14}, start{40, 5};
  const std::vector<int32_t> tables{5, 0, 7, 2, 1, 6, 3, 4};
  for (int64_t Dh : {8, 12, 32, 67}) {
    const int64_t T = cu.back();
    const std::vector<float> q = RandomVector(rng, T * Hq * Dh),
                             k = RandomVector(rng, T * Hkv * Dh),
                             v = RandomVector(rng, T * Hkv * Dh);
    // Earlier positions already in the cache: random rows everywhere.
    const std::vector<float> k_cache = RandomVector(rng, num_blocks * block * Hkv * Dh),
                             v_cache = RandomVector(rng, num_blocks * block * Hkv * Dh);
    auto run = [&](int isa) {  // -1: the reference
      std::vector<float> kc = k_cache, vc = v_cache, out = Poisoned(T * Hq * Dh);
      PagedAttentionParams p;
      p.q = q.data();
      p.k = k.data();
      p.v = v.data();
      p.cu_seqlens = cu.data();
      p.start_pos = start.data();
      p.block_tables = tables.data();
      p.k_cache = kc.data();
      p.v_cache = vc.data();
      p.out = out.data();
      p.num_seqs = 2;
      p.num_q_heads = Hq;
      p.num_kv_heads = Hkv;
      p.head_dim = Dh;
      p.block_size = block;
      p.num_blocks = num_blocks;
      p.max_blocks_per_seq = max_blocks;
      p.scale = 1.0f / std::sqrt(float(Dh));
      if (isa < 0) {
        PagedAttention(p);
      } else {
        internal::PagedAttentionFastWithIsa(p, isas[isa]);
      }
      return out;
    };
    const std::vector<float> ref = run(-1);
    for (size_t i = 0; i < isas.size(); ++i) {
      EXPECT_TRUE(AllClose(run(static_cast<int>(i)), ref, kAtol, kRtol))
          << "isa " << static_cast<int>(isas[i]) << " head_dim " << Dh;
    }
  }
}

}  // namespace
}  // namespace tandem::kernels::cpu
