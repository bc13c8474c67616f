// Shared helpers of the kernels tests: random inputs, NaN-poisoned outputs, tolerant compares.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::kernels::cpu::testing {

inline std::vector<float> RandomVector(std::mt19937& rng, int64_t n, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// An output buffer filled with NaN, so elements a kernel fails to write show up in compares.
inline std::vector<float> Poisoned(int64_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// Asserts |actual - expected| <= atol + rtol * |expected| everywhere (NaN fails), naming the
// first bad index.
inline ::testing::AssertionResult AllClose(const std::vector<float>& actual,
                                           const std::vector<float>& expected, float atol,
                                           float rtol) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size();
  }
  int64_t bad = 0, first = -1;
  double worst = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    const double allowed = atol + rtol * std::fabs(static_cast<double>(expected[i]));
    if (!(diff <= allowed)) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
    if (diff > worst || std::isnan(diff)) worst = diff;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << actual.size() << " elements differ; first at " << first << ": "
         << actual[first] << " vs " << expected[first] << " (worst diff " << worst << ")";
}

inline ::testing::AssertionResult BitEqual(const std::vector<float>& actual,
                                           const std::vector<float>& expected) {
  return AllClose(actual, expected, 0.0f, 0.0f);
}

// Random positive lengths summing to total, with at least one entry.
inline std::vector<int32_t> RandomSplit(std::mt19937& rng, int32_t total, int32_t max_part) {
  std::vector<int32_t> parts;
  while (total > 0) {
    const int32_t part = std::min<int32_t>(total, 1 + static_cast<int32_t>(rng() % max_part));
    parts.push_back(part);
    total -= part;
  }
  return parts;
}

inline std::vector<int32_t> CuSeqlens(const std::vector<int32_t>& lengths) {
  std::vector<int32_t> cu{0};
  for (int32_t n : lengths) cu.push_back(cu.back() + n);
  return cu;
}

}  // namespace tandem::kernels::cpu::testing
