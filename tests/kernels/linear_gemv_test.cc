// The batched GEMV path of LinearFast (kernels/cpu/linear_internal.h), both ISAs, against the
// double-accumulating reference Linear on odd shapes.
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_internal.h"
#include "tests/kernels/test_util.h"

namespace tandem::kernels::cpu {
namespace {

using testing::BitEqual;
using testing::Poisoned;
using testing::RandomVector;

struct Problem {
  int64_t T, K, N;
  std::vector<float> x, w;
};

Problem MakeProblem(std::mt19937& rng, int64_t T, int64_t K, int64_t N) {
  Problem pr{T, K, N, RandomVector(rng, T * K, -2.0f, 2.0f), RandomVector(rng, N * K)};
  // Different magnitudes per token, so outputs written to the wrong token row cannot pass.
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < K; ++i) pr.x[t * K + i] *= float(t + 1);
  }
  return pr;
}

// Asserts |actual - ref| <= (K / 8 + 16) * 2^-24 * (|x|.|w|) per element: the first-order bound
// of fp32 accumulation in 8 lanes (K / 8 terms per lane, then the lane and tail sums), with
// slack. A wrong or missing term is of the order of |x|.|w| itself and fails it.
::testing::AssertionResult WithinFp32Bound(const Problem& pr, const std::vector<float>& actual,
                                           const std::vector<float>& ref, double terms) {
  for (int64_t t = 0; t < pr.T; ++t) {
    for (int64_t o = 0; o < pr.N; ++o) {
      double abs_dot = 0;
      for (int64_t i = 0; i < pr.K; ++i) {
        abs_dot += std::fabs(double(pr.x[t * pr.K + i]) * pr.w[o * pr.K + i]);
      }
      const double bound = terms * std::ldexp(1.0, -24) * abs_dot + 1e-30;
      const double diff = std::fabs(double(actual[t * pr.N + o]) - ref[t * pr.N + o]);
      if (!(diff <= bound)) {
        return ::testing::AssertionFailure()
               << "token " << t << " row " << o << ": " << actual[t * pr.N + o] << " vs "
               << ref[t * pr.N + o] << " (diff " << diff << " > bound " << bound << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<CpuIsa> SupportedIsas() {
  std::vector<CpuIsa> isas{CpuIsa::kPortable};
  if (CpuIsaSupported(CpuIsa::kAvx2Fma)) isas.push_back(CpuIsa::kAvx2Fma);
  return isas;
}

const std::vector<std::tuple<int64_t, int64_t>>& Shapes() {  // K, N
  static const std::vector<std::tuple<int64_t, int64_t>> shapes{
      {1, 1},  {7, 3},    {8, 8},     {9, 17},    {13, 1},     {31, 9},
      {64, 5}, {127, 33}, {128, 776}, {130, 257}, {1000, 1030}};
  return shapes;
}

TEST(LinearGemvTest, BothIsasMatchReferenceOnOddShapes) {
  std::mt19937 rng(11);
  for (CpuIsa isa : SupportedIsas()) {
    for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17}) {
      for (auto [K, N] : Shapes()) {
        if (T > 9 && K * N > 200000) continue;  // keep the reference loops quick
        const Problem pr = MakeProblem(rng, T, K, N);
        std::vector<float> ref = Poisoned(T * N), out = Poisoned(T * N);
        Linear({pr.x.data(), pr.w.data(), ref.data(), T, K, N});
        internal::LinearGemv({pr.x.data(), pr.w.data(), out.data(), T, K, N}, isa);
        EXPECT_TRUE(WithinFp32Bound(pr, out, ref, double(K / 8 + 16)))
            << "isa " << int(isa) << " T=" << T << " K=" << K << " N=" << N;
      }
    }
  }
}

TEST(LinearGemvTest, PortableAndAvx2AgreeClosely) {
  if (!CpuIsaSupported(CpuIsa::kAvx2Fma)) {
    GTEST_SKIP() << "this CPU has no AVX2+FMA: only the portable path runs here";
  }
  std::mt19937 rng(12);
  for (auto [T, K, N] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1000, 1030}, {5, 127, 33}, {8, 130, 257}}) {
    const Problem pr = MakeProblem(rng, T, K, N);
    std::vector<float> a = Poisoned(T * N), b = Poisoned(T * N);
    internal::LinearGemv({pr.x.data(), pr.w.data(), a.data(), T, K, N}, CpuIsa::kPortable);
    internal::LinearGemv({pr.x.data(), pr.w.data(), b.data(), T, K, N}, CpuIsa::kAvx2Fma);
    // The same lane structure; only FMA's single rounding (and the tail order) differ.
    EXPECT_TRUE(WithinFp32Bound(pr, a, b, double(2 * (K / 8 + 16)))) << T << "x" << K << "x" << N;
  }
}

TEST(LinearGemvTest, ColumnRangeWritesOnlyItsColumns) {
  std::mt19937 rng(13);
  const int64_t T = 3, K = 19, N = 29;
  const Problem pr = MakeProblem(rng, T, K, N);
  std::vector<float> ref(T * N);
  Linear({pr.x.data(), pr.w.data(), ref.data(), T, K, N});
  for (CpuIsa isa : SupportedIsas()) {
    std::vector<float> out = Poisoned(T * N);
    const LinearParams p{pr.x.data(), pr.w.data(), out.data(), T, K, N};
    internal::GemvColumns(p, 5, 18, isa);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t o = 0; o < N; ++o) {
        const float v = out[t * N + o];
        if (o >= 5 && o < 18) {
          EXPECT_NEAR(v, ref[t * N + o], 1e-4f) << t << "," << o;
        } else {
          EXPECT_TRUE(std::isnan(v)) << "wrote outside [5, 18) at " << t << "," << o;
        }
      }
    }
    internal::GemvColumns(p, 7, 7, isa);  // an empty range is fine
  }
}

TEST(LinearGemvTest, LinearFastUsesGemvUpToTheCrossoverAndBlasBeyond) {
  std::mt19937 rng(14);
  const int64_t K = 100, N = 70;
  for (int64_t T :
       {int64_t{1}, internal::kGemvMaxTokens, internal::kGemvMaxTokens + 1, int64_t{40}}) {
    const Problem pr = MakeProblem(rng, T, K, N);
    std::vector<float> fast = Poisoned(T * N), gemv = Poisoned(T * N), ref(T * N);
    LinearFast({pr.x.data(), pr.w.data(), fast.data(), T, K, N});
    internal::LinearGemv({pr.x.data(), pr.w.data(), gemv.data(), T, K, N}, BestCpuIsa());
    Linear({pr.x.data(), pr.w.data(), ref.data(), T, K, N});
    // OpenBLAS's blocked sums: a K-term recursive-summation bound.
    EXPECT_TRUE(WithinFp32Bound(pr, fast, ref, double(K + 16))) << "T=" << T;
    if (T <= internal::kGemvMaxTokens && internal::GemvEnabled()) {
      EXPECT_TRUE(BitEqual(fast, gemv)) << "LinearFast at T=" << T << " is not the GEMV path";
    }
  }
}

}  // namespace
}  // namespace tandem::kernels::cpu
