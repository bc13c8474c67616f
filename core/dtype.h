// Element types and scalar conversions.
//
// DType names the element types Tandem stores: checkpoints (F32/BF16/F16/F8), activations and
// ids. Conversions follow these rules, and tests pin each one:
//  - bf16: round-to-nearest-even from f32; NaN stays a (quiet) NaN with its sign; inf stays inf.
//  - f16: IEEE binary16, round-to-nearest-even, subnormals kept; finite values that round past
//    65504 become inf (IEEE overflow).
//  - fp8 e4m3 (OCP "E4M3FN": bias 7, no inf, max 448): round-to-nearest-even, subnormals kept;
//    finite overflow and +-inf SATURATE to +-448; NaN -> 0x7F/0xFF.
//  - fp8 e5m2 (bias 15, max 57344, has inf): round-to-nearest-even, subnormals kept; finite
//    overflow SATURATES to +-57344; +-inf stays +-inf; NaN -> 0x7E/0xFE.
// All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace tandem::core {

enum class DType : uint8_t { kF32, kBF16, kF16, kF8E4M3, kF8E5M2, kI32, kI64 };

size_t DTypeSize(DType dtype);
// Short lower-case name ("f32", "bf16", "f16", "f8e4m3", "f8e5m2", "i32", "i64").
absl::string_view DTypeName(DType dtype);
// Parses DTypeName() spellings.
absl::StatusOr<DType> ParseDType(absl::string_view name);
// safetensors header spelling: "F32", "BF16", "F16", "F8_E4M3", "F8_E5M2", "I32", "I64".
absl::string_view SafetensorsDTypeName(DType dtype);
absl::StatusOr<DType> DTypeFromSafetensors(absl::string_view name);
bool IsFloating(DType dtype);

inline float Bf16ToFloat(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: keep sign, force quiet
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

// Rounds an f32 to the nearest bf16 value and returns it as f32 (the model's rounding points).
inline float RoundToBf16(float f) { return Bf16ToFloat(FloatToBf16(f)); }

float F16ToFloat(uint16_t v);
uint16_t FloatToF16(float f);
float Fp8E4M3ToFloat(uint8_t v);
uint8_t FloatToFp8E4M3(float f);
float Fp8E5M2ToFloat(uint8_t v);
uint8_t FloatToFp8E5M2(float f);

// Converts `n` elements of a floating dtype to f32 / from f32. CHECKs the dtype is floating.
void ConvertToF32(DType src_dtype, const void* src, float* dst, size_t n);
void ConvertFromF32(const float* src, DType dst_dtype, void* dst, size_t n);

}  // namespace tandem::core
