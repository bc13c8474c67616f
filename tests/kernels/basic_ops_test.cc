// Embedding, norms, linear and elementwise ops against direct formulas.
#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rms_norm.h"
#include "tests/kernels/test_util.h"

namespace tandem::kernels::cpu {
namespace {

using testing::AllClose;
using testing::BitEqual;
using testing::Poisoned;
using testing::RandomVector;

TEST(EmbeddingTest, VocabParallelSumOverTwoRanksEqualsFullLookup) {
  std::mt19937 rng(1);
  const int64_t V = 37, H = 8, T = 20;
  const std::vector<float> table = RandomVector(rng, V * H);
  std::vector<int32_t> ids(T);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % V);
  ids[0] = 0;
  ids[1] = V - 1;

  std::vector<float> full = Poisoned(T * H);
  Embedding({ids.data(), table.data(), full.data(), T, H, 0, V});
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < H; ++i) ASSERT_EQ(full[t * H + i], table[ids[t] * H + i]);
  }
  const int64_t split = 19;  // uneven shards
  std::vector<float> r0 = Poisoned(T * H), r1 = Poisoned(T * H);
  Embedding({ids.data(), table.data(), r0.data(), T, H, 0, split});
  Embedding({ids.data(), table.data() + split * H, r1.data(), T, H, split, V - split});
  std::vector<float> sum(T * H);
  for (int64_t i = 0; i < T * H; ++i) sum[i] = r0[i] + r1[i];
  EXPECT_TRUE(BitEqual(sum, full));
}

TEST(RmsNormTest, MatchesFormulaAndAllowsAliasing) {
  std::mt19937 rng(2);
  const int64_t T = 5, H = 48;
  const std::vector<float> x = RandomVector(rng, T * H, -3, 3);
  const std::vector<float> w = RandomVector(rng, H);
  std::vector<float> out = Poisoned(T * H), expected(T * H);
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < H; ++i) ss += double(x[t * H + i]) * x[t * H + i];
    const double inv = 1.0 / std::sqrt(ss / H + 1e-5);
    for (int64_t i = 0; i < H; ++i) expected[t * H + i] = float(w[i] * (x[t * H + i] * inv));
  }
  RmsNorm({x.data(), w.data(), out.data(), T, H, 1e-5f});
  EXPECT_TRUE(AllClose(out, expected, 1e-6f, 1e-6f));
  std::vector<float> inplace = x;
  RmsNorm({inplace.data(), w.data(), inplace.data(), T, H, 1e-5f});
  EXPECT_TRUE(BitEqual(inplace, out));
}

TEST(GatedRmsNormTest, MatchesDirectGroupedFormula) {
  std::mt19937 rng(3);
  const int64_t T = 4, D = 24, group = 8, z_stride = 40;
  const std::vector<float> y = RandomVector(rng, T * D, -2, 2);
  const std::vector<float> zbuf = RandomVector(rng, T * z_stride, -3, 3);  // z at offset 5
  const std::vector<float> w = RandomVector(rng, D);
  std::vector<float> expected(T * D);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t g = 0; g < D / group; ++g) {
      double ss = 0;
      std::vector<double> u(group);
      for (int64_t i = 0; i < group; ++i) {
        const int64_t c = g * group + i;
        const double z = zbuf[t * z_stride + 5 + c];
        u[i] = y[t * D + c] * (z / (1 + std::exp(-z)));
        ss += u[i] * u[i];
      }
      const double inv = 1.0 / std::sqrt(ss / group + 1e-5);
      for (int64_t i = 0; i < group; ++i) {
        expected[t * D + g * group + i] = float(u[i] * inv * w[g * group + i]);
      }
    }
  }
  std::vector<float> out = Poisoned(T * D);
  GatedRmsNormParams p;
  p.y = y.data();
  p.z = zbuf.data() + 5;
  p.weight = w.data();
  p.out = out.data();
  p.num_tokens = T;
  p.dim = D;
  p.group_size = group;
  p.z_stride = z_stride;
  GatedRmsNorm(p);
  EXPECT_TRUE(AllClose(out, expected, 1e-5f, 1e-5f));
  // A full-width norm is a different function: the grouped result must not match it.
  p.group_size = D;
  std::vector<float> full_width = Poisoned(T * D);
  p.out = full_width.data();
  GatedRmsNorm(p);
  EXPECT_FALSE(AllClose(full_width, expected, 1e-5f, 1e-5f));
  // In place over a dense y with a dense z.
  std::vector<float> inplace = y, z_dense(T * D);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < D; ++c) z_dense[t * D + c] = zbuf[t * z_stride + 5 + c];
  }
  GatedRmsNormParams q = p;
  q.y = inplace.data();
  q.z = z_dense.data();
  q.out = inplace.data();
  q.z_stride = 0;
  q.group_size = group;
  GatedRmsNorm(q);
  EXPECT_TRUE(BitEqual(inplace, out));
}

TEST(LinearTest, FastMatchesReference) {
  std::mt19937 rng(4);
  for (auto [T, K, N] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 64, 50}, {7, 129, 257}, {33, 96, 31}}) {
    const std::vector<float> x = RandomVector(rng, T * K), w = RandomVector(rng, N * K);
    std::vector<float> ref = Poisoned(T * N), fast = Poisoned(T * N);
    Linear({x.data(), w.data(), ref.data(), T, K, N});
    LinearFast({x.data(), w.data(), fast.data(), T, K, N});
    // fp32 accumulation over K terms of |x w| <= 1: error bound ~ K * 2^-24 * sqrt(K) scale.
    EXPECT_TRUE(AllClose(fast, ref, 2e-5f * std::sqrt(float(K)), 1e-5f))
        << T << "x" << K << "x" << N;
    // Spot-check the reference itself against a direct dot product.
    double dot = 0;
    for (int64_t i = 0; i < K; ++i) dot += double(x[(T - 1) * K + i]) * w[(N - 1) * K + i];
    EXPECT_FLOAT_EQ(ref[T * N - 1], float(dot));
  }
  std::vector<float> untouched = Poisoned(4);
  const std::vector<float> w(8, 1.0f);
  LinearFast({w.data(), w.data(), untouched.data(), 0, 4, 2});  // no tokens: writes nothing
  EXPECT_TRUE(std::isnan(untouched[0]));
}

TEST(ElementwiseTest, ReluSquaredAddRoundAndHelpers) {
  std::vector<float> x{-2.0f, -0.0f, 0.5f, 3.0f};
  ReluSquaredInPlace(x.data(), 4);
  EXPECT_TRUE(BitEqual(x, {0.0f, 0.0f, 0.25f, 9.0f}));
  std::vector<float> a{1, 2, 3}, b{0.5f, -2, 10};
  AddInPlace(a.data(), b.data(), 3);
  EXPECT_TRUE(BitEqual(a, {1.5f, 0.0f, 13.0f}));
  std::vector<float> r{1.00390625f, 1.01171875f, 3.14159265f};
  RoundToBf16InPlace(r.data(), 3);
  for (float v : r) EXPECT_EQ(v, core::RoundToBf16(v));
  EXPECT_EQ(r[0], 1.0f);  // halfway: ties to even
  EXPECT_EQ(Softplus(25.0f), 25.0f);
  EXPECT_NEAR(Softplus(0.0f), std::log(2.0f), 1e-7f);
  EXPECT_NEAR(Softplus(19.0f), 19.0f + std::exp(-19.0f), 1e-5f);
  EXPECT_NEAR(Silu(1.0f), 1.0f / (1.0f + std::exp(-1.0f)), 1e-7f);
}

}  // namespace
}  // namespace tandem::kernels::cpu
