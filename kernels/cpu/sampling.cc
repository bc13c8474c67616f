#include "kernels/cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "core/logging.h"

namespace tandem::kernels::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Ids of `values` sorted by value descending, ties by lower id; -inf entries excluded.
std::vector<int64_t> SortedDescending(const float* values, int64_t n) {
  std::vector<int64_t> order;
  order.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    if (values[i] != kNegInf) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  return order;
}

}  // namespace

void ApplyPenalties(float* logits, int64_t n, int64_t vocab_begin, const SamplingParams& params,
                    absl::Span<const int32_t> prompt_tokens,
                    absl::Span<const int32_t> output_tokens) {
  std::unordered_map<int64_t, int64_t> output_counts;  // local index -> count in output
  for (int32_t id : output_tokens) {
    const int64_t i = id - vocab_begin;
    if (i >= 0 && i < n) ++output_counts[i];
  }
  if (params.repetition_penalty != 1.0f) {
    TANDEM_CHECK(params.repetition_penalty > 0.0f);
    std::vector<int64_t> seen;
    for (int32_t id : prompt_tokens) seen.push_back(id - vocab_begin);
    for (const auto& [i, count] : output_counts) seen.push_back(i);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int64_t i : seen) {
      if (i < 0 || i >= n) continue;
      logits[i] = logits[i] > 0.0f ? logits[i] / params.repetition_penalty
                                   : logits[i] * params.repetition_penalty;
    }
  }
  for (const auto& [i, count] : output_counts) {
    logits[i] -= params.presence_penalty + params.frequency_penalty * static_cast<float>(count);
  }
}

double TopKThreshold(absl::Span<const float> values, int32_t top_k) {
  if (top_k <= 0 || static_cast<int64_t>(values.size()) < top_k) return kNegInf;
  std::vector<float> copy(values.begin(), values.end());
  std::nth_element(copy.begin(), copy.begin() + (top_k - 1), copy.end(), std::greater<float>());
  return copy[top_k - 1];
}

double MinPThreshold(float max_logit, float min_p) {
  if (min_p <= 0.0f || max_logit == kNegInf) return kNegInf;
  // p_i < min_p * p_max  <=>  logit_i < max_logit + log(min_p).
  return static_cast<double>(max_logit) + std::log(static_cast<double>(min_p));
}

void MaskBelow(float* logits, int64_t n, double threshold) {
  for (int64_t i = 0; i < n; ++i) {
    if (logits[i] < threshold) logits[i] = kNegInf;
  }
}

void ApplyTopKTopPMinP(float* logits, int64_t n, int32_t top_k, float top_p, float min_p) {
  MaskBelow(logits, n, TopKThreshold(absl::MakeConstSpan(logits, n), top_k));
  if (top_p < 1.0f) {
    const std::vector<int64_t> order = SortedDescending(logits, n);
    if (!order.empty()) {
      const double max_logit = logits[order[0]];
      double total = 0.0;
      for (int64_t i : order) total += std::exp(static_cast<double>(logits[i]) - max_logit);
      double cum = 0.0;
      size_t keep = 0;
      while (keep < order.size()) {
        cum += std::exp(static_cast<double>(logits[order[keep]]) - max_logit) / total;
        ++keep;
        if (cum >= top_p) break;
      }
      for (size_t r = keep; r < order.size(); ++r) logits[order[r]] = kNegInf;
    }
  }
  if (min_p > 0.0f) {
    MaskBelow(logits, n, MinPThreshold(*std::max_element(logits, logits + n), min_p));
  }
}

float GumbelNoise(uint64_t seed, int64_t position, int32_t token) {
  uint64_t h = SplitMix64(seed);
  h = SplitMix64(h ^ static_cast<uint64_t>(position));
  h = SplitMix64(h ^ static_cast<uint64_t>(static_cast<uint32_t>(token)));
  const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;  // in (0, 1)
  return static_cast<float>(-std::log(-std::log(u)));
}

TokenScore CombinePicks(TokenScore a, TokenScore b) {
  if (a.token < 0) return b;
  if (b.token < 0) return a;
  if (a.score != b.score) return a.score > b.score ? a : b;
  return a.token < b.token ? a : b;
}

TokenScore Argmax(const float* logits, int64_t n, int64_t vocab_begin) {
  TokenScore best;
  for (int64_t i = 0; i < n; ++i) {
    if (logits[i] == kNegInf) continue;
    if (best.token < 0 || logits[i] > best.score) {
      best = {static_cast<int32_t>(vocab_begin + i), logits[i]};
    }
  }
  return best;
}

TokenScore GumbelMax(const float* logits, int64_t n, int64_t vocab_begin, uint64_t seed,
                     int64_t position) {
  TokenScore best;
  for (int64_t i = 0; i < n; ++i) {
    if (logits[i] == kNegInf) continue;
    const int32_t token = static_cast<int32_t>(vocab_begin + i);
    const float score = logits[i] + GumbelNoise(seed, position, token);
    if (best.token < 0 || score > best.score) best = {token, score};
  }
  return best;
}

int32_t Sample(float* logits, int64_t vocab_size, const SamplingParams& params,
               absl::Span<const int32_t> prompt_tokens, absl::Span<const int32_t> output_tokens) {
  TANDEM_CHECK(vocab_size > 0);
  TANDEM_CHECK(params.temperature >= 0.0f) << "temperature " << params.temperature;
  ApplyPenalties(logits, vocab_size, 0, params, prompt_tokens, output_tokens);
  if (params.temperature == 0.0f) return Argmax(logits, vocab_size, 0).token;
  for (int64_t i = 0; i < vocab_size; ++i) logits[i] /= params.temperature;
  ApplyTopKTopPMinP(logits, vocab_size, params.top_k, params.top_p, params.min_p);
  return GumbelMax(logits, vocab_size, 0, params.seed, params.position).token;
}

void LogSoftmax(const float* logits, float* out, int64_t n) {
  float max_logit = kNegInf;
  for (int64_t i = 0; i < n; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  const double log_z = max_logit + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - log_z);
}

std::vector<TokenScore> TopN(const float* values, int64_t n, int64_t vocab_begin, int64_t k) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, n);
  auto better = [&](int64_t a, int64_t b) {
    return values[a] != values[b] ? values[a] > values[b] : a < b;
  };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
  std::vector<TokenScore> top;
  for (int64_t r = 0; r < k; ++r) {
    top.push_back({static_cast<int32_t>(vocab_begin + order[r]), values[order[r]]});
  }
  return top;
}

}  // namespace tandem::kernels::cpu
