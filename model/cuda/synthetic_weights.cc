#include "model/cuda/synthetic_weights.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tandem::model::cuda {
namespace {

enum class Kind { kALog, kDtBias, kD, kNorm, kConv, kEmbedding, kLinear };

Kind KindOf(const std::string& name) {
  if (absl::EndsWith(name, ".A_log")) return Kind::kALog;
  if (absl::EndsWith(name, ".dt_bias")) return Kind::kDtBias;
  if (absl::EndsWith(name, ".D")) return Kind::kD;
  if (absl::EndsWith(name, "norm.weight") || absl::EndsWith(name, "norm_f.weight")) {
    return Kind::kNorm;
  }
  if (absl::StrContains(name, ".conv1d.")) return Kind::kConv;
  if (absl::StrContains(name, "embedding")) return Kind::kEmbedding;
  return Kind::kLinear;
}

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t NameHash(const std::string& name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  return h;
}

constexpr int64_t kChunk = int64_t{1} << 20;

}  // namespace

absl::StatusOr<core::Tensor> SyntheticTensor(const core::ModelConfig& config,
                                             const std::string& name, const core::Shape& shape,
                                             uint64_t seed, core::DType dtype) {
  if (dtype != core::DType::kF32 && dtype != core::DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("synthetic weights are f32 or bf16, got ",
                                                   core::DTypeName(dtype), " for ", name));
  }
  const Kind kind = KindOf(name);
  const float fan_in = shape.empty() ? 1.0f : static_cast<float>(shape.back());
  const float conv_bound = 1.0f / std::sqrt(static_cast<float>(config.conv_kernel));
  core::Tensor t = core::Tensor::Empty(dtype, shape);
  const int64_t n = t.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const uint64_t base = seed * 0xD1B54A32D192ED03ULL ^ NameHash(name);
  const bool bf16 = dtype == core::DType::kBF16;
  float* f32 = bf16 ? nullptr : t.data<float>();
  uint16_t* b16 = bf16 ? static_cast<uint16_t*>(t.raw()) : nullptr;
  const float kSqrt3 = std::sqrt(3.0f);
  const float log_lo = std::log(0.001f), log_hi = std::log(0.1f);
  std::atomic<int64_t> next{0};
  const auto work = [&] {
    for (int64_t c = next++; c < chunks; c = next++) {
      uint64_t state = base + static_cast<uint64_t>(c) * 0x632BE59BD9B4E019ULL;
      const int64_t end = std::min(n, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < end; ++i) {
        const float u = static_cast<float>(SplitMix(state) >> 40) * (1.0f / 16777216.0f);
        const float z = (2.0f * u - 1.0f) * kSqrt3;  // mean 0, variance 1
        float v = 0.0f;
        switch (kind) {
          case Kind::kALog:
            v = std::log(1.0f + 15.0f * u);
            break;
          case Kind::kDtBias: {
            const float dt = std::max(std::exp(log_lo + (log_hi - log_lo) * u), 1e-4f);
            v = dt + std::log(-std::expm1(-dt));
            break;
          }
          case Kind::kD:
            v = 1.0f + 0.1f * z;
            break;
          case Kind::kNorm:
            v = 1.0f + 0.05f * z;
            break;
          case Kind::kConv:
            v = conv_bound * (2.0f * u - 1.0f);
            break;
          case Kind::kEmbedding:
            v = z;
            break;
          case Kind::kLinear:
            v = z / std::sqrt(fan_in);
            break;
        }
        if (bf16) {
          b16[i] = core::FloatToBf16(v);
        } else {
          f32[i] = v;
        }
      }
    }
  };
  const int64_t threads = std::min<int64_t>(
      chunks, std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency())));
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < threads; ++i) pool.emplace_back(work);
  work();
  for (std::thread& th : pool) th.join();
  return t;
}

}  // namespace tandem::model::cuda
