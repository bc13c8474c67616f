// Deterministic per-rank test data, so that every process of a multi-process comm test can compute
// what every other rank holds (fresh seed per test run, chosen by the parent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::comm::testing {

// splitmix64 of (seed, stream, index).
inline uint64_t Mix(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed ^ (stream * 0x9e3779b97f4a7c15ULL) ^ (index * 0xbf58476d1ce4e5b9ULL);
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Integers in [-1000, 1000] as floats: sums over a few ranks are exact in any order.
inline std::vector<float> RankFloats(uint64_t seed, int rank, size_t n, uint64_t case_id) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] =
        static_cast<float>(static_cast<int64_t>(Mix(seed, case_id * 1000 + rank, i) % 2001) - 1000);
  }
  return v;
}

inline std::string RankBytes(uint64_t seed, int rank, size_t n, uint64_t case_id) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>(Mix(seed, case_id * 1000 + rank + 500, i / 8) >> (8 * (i % 8)));
  }
  return s;
}

}  // namespace tandem::comm::testing
