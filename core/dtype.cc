#include "core/dtype.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/logging.h"

namespace tandem::core {
namespace {

struct MiniFloat {
  int ebits;
  int mbits;
  int bias;
  bool has_inf;
  bool saturate;   // finite overflow -> max finite (else -> inf)
  bool inf_to_max; // +-inf -> +-max finite (formats without inf)
  uint32_t max_code;
  uint32_t nan_code;
};

constexpr MiniFloat kF16{5, 10, 15, true, false, false, 0x7BFF, 0x7E00};
constexpr MiniFloat kE4M3{4, 3, 7, false, true, true, 0x7E, 0x7F};
constexpr MiniFloat kE5M2{5, 2, 15, true, true, false, 0x7B, 0x7E};

float Decode(const MiniFloat& fmt, uint32_t code) {
  const int total = 1 + fmt.ebits + fmt.mbits;
  const bool neg = (code >> (total - 1)) & 1u;
  const uint32_t exp = (code >> fmt.mbits) & ((1u << fmt.ebits) - 1);
  const uint32_t mant = code & ((1u << fmt.mbits) - 1);
  const uint32_t exp_max = (1u << fmt.ebits) - 1;
  float v;
  if (fmt.has_inf && exp == exp_max) {
    v = mant == 0 ? std::numeric_limits<float>::infinity()
                  : std::numeric_limits<float>::quiet_NaN();
  } else if (!fmt.has_inf && (code & ((1u << (total - 1)) - 1)) == fmt.nan_code) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), 1 - fmt.bias - fmt.mbits);
  } else {
    v = std::ldexp(static_cast<float>(mant + (1u << fmt.mbits)),
                   static_cast<int>(exp) - fmt.bias - fmt.mbits);
  }
  return neg ? -v : v;
}

uint32_t Encode(const MiniFloat& fmt, float f) {
  const int total = 1 + fmt.ebits + fmt.mbits;
  const uint32_t sign = std::signbit(f) ? (1u << (total - 1)) : 0u;
  const uint32_t inf_code = ((1u << fmt.ebits) - 1) << fmt.mbits;
  if (std::isnan(f)) return sign | fmt.nan_code;
  const float a = std::fabs(f);
  const float max_finite = Decode(fmt, fmt.max_code);
  if (std::isinf(a)) return sign | (fmt.inf_to_max ? fmt.max_code : inf_code);
  if (a == 0.0f) return sign;
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  const int min_exp = 1 - fmt.bias;
  const int exp = std::max(e - 1, min_exp);
  // a / quantum is exact (power-of-two scale); nearbyint rounds half to even.
  const double q = std::nearbyint(std::ldexp(static_cast<double>(a), fmt.mbits - exp));
  const double v = std::ldexp(q, exp - fmt.mbits);
  if (v > max_finite) return sign | (fmt.saturate ? fmt.max_code : inf_code);
  if (v == 0.0) return sign;
  int ve;
  std::frexp(v, &ve);
  const int unbiased = ve - 1;
  if (unbiased < min_exp) {  // subnormal
    return sign | static_cast<uint32_t>(std::ldexp(v, fmt.bias - 1 + fmt.mbits));
  }
  const uint32_t mant =
      static_cast<uint32_t>(std::ldexp(v, fmt.mbits - unbiased)) - (1u << fmt.mbits);
  return sign | (static_cast<uint32_t>(unbiased + fmt.bias) << fmt.mbits) | mant;
}

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kF8E4M3: return 1;
    case DType::kF8E5M2: return 1;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
  }
  return 0;
}

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kF8E4M3: return "f8e4m3";
    case DType::kF8E5M2: return "f8e5m2";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3, DType::kF8E5M2,
                  DType::kI32, DType::kI64}) {
    if (DTypeName(d) == name) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dtype '", name, "' (expected one of f32, bf16, f16, f8e4m3, f8e5m2, i32, i64)"));
}

absl::string_view SafetensorsDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kF8E4M3: return "F8_E4M3";
    case DType::kF8E5M2: return "F8_E5M2";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
  }
  return "?";
}

absl::StatusOr<DType> DTypeFromSafetensors(absl::string_view name) {
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3, DType::kF8E5M2,
                  DType::kI32, DType::kI64}) {
    if (SafetensorsDTypeName(d) == name) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported safetensors dtype '", name,
      "' (supported: F32, BF16, F16, F8_E4M3, F8_E5M2, I32, I64)"));
}

bool IsFloating(DType dtype) { return dtype != DType::kI32 && dtype != DType::kI64; }

float F16ToFloat(uint16_t v) { return Decode(kF16, v); }
uint16_t FloatToF16(float f) { return static_cast<uint16_t>(Encode(kF16, f)); }
float Fp8E4M3ToFloat(uint8_t v) { return Decode(kE4M3, v); }
uint8_t FloatToFp8E4M3(float f) { return static_cast<uint8_t>(Encode(kE4M3, f)); }
float Fp8E5M2ToFloat(uint8_t v) { return Decode(kE5M2, v); }
uint8_t FloatToFp8E5M2(float f) { return static_cast<uint8_t>(Encode(kE5M2, f)); }

void ConvertToF32(DType src_dtype, const void* src, float* dst, size_t n) {
  switch (src_dtype) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(s[i]);
      return;
    }
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = F16ToFloat(s[i]);
      return;
    }
    case DType::kF8E4M3: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = Fp8E4M3ToFloat(s[i]);
      return;
    }
    case DType::kF8E5M2: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = Fp8E5M2ToFloat(s[i]);
      return;
    }
    case DType::kI32:
    case DType::kI64:
      break;
  }
  TANDEM_CHECK(false) << "ConvertToF32 on non-floating dtype " << DTypeName(src_dtype);
}

void ConvertFromF32(const float* src, DType dst_dtype, void* dst, size_t n) {
  switch (dst_dtype) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = FloatToBf16(src[i]);
      return;
    }
    case DType::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = FloatToF16(src[i]);
      return;
    }
    case DType::kF8E4M3: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = FloatToFp8E4M3(src[i]);
      return;
    }
    case DType::kF8E5M2: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = FloatToFp8E5M2(src[i]);
      return;
    }
    case DType::kI32:
    case DType::kI64:
      break;
  }
  TANDEM_CHECK(false) << "ConvertFromF32 to non-floating dtype " << DTypeName(dst_dtype);
}

}  // namespace tandem::core
