#include "core/dtype.h"

#include <cmath>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace tandem::core {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(Bf16, ExactValuesRoundTrip) {
  for (float v : {0.0f, -0.0f, 1.0f, -2.5f, 65280.0f, 1.0f / 1024}) {
    EXPECT_EQ(Bf16ToFloat(FloatToBf16(v)), v);
  }
  EXPECT_EQ(FloatToBf16(-0.0f), 0x8000);
}

TEST(Bf16, RoundsToNearestEvenOnTies) {
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(FloatToBf16(FromBits(0x3F808000)), 0x3F80);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd mantissa) and 1+2^-6: rounds up to even.
  EXPECT_EQ(FloatToBf16(FromBits(0x3F818000)), 0x3F82);
  // Just above the tie rounds up.
  EXPECT_EQ(FloatToBf16(FromBits(0x3F808001)), 0x3F81);
  // Just below rounds down.
  EXPECT_EQ(FloatToBf16(FromBits(0x3F807FFF)), 0x3F80);
}

TEST(Bf16, NanInfAndOverflow) {
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(kNaN))));
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(-kNaN))));
  // A NaN whose payload sits only in the low bits must not round into inf.
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(FromBits(0x7F800001)))));
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(kInf)), kInf);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(-kInf)), -kInf);
  // The largest float rounds to inf in bf16 (RNE overflow).
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(std::numeric_limits<float>::max())), kInf);
}

TEST(Bf16, SubnormalsKept) {
  const float tiny = FromBits(0x00010000);  // a bf16 subnormal
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(tiny)), tiny);
  EXPECT_EQ(FloatToBf16(FromBits(0x00008000)), 0x0000);  // tie to even -> 0
  EXPECT_EQ(FloatToBf16(FromBits(0x00018000)), 0x0002);  // tie to even -> 2
}

TEST(Bf16, RandomValuesMatchDoubleRounding) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 100000; ++i) {
    const float f = FromBits(bits(rng));
    if (!std::isfinite(f)) continue;
    const float r = Bf16ToFloat(FloatToBf16(f));
    // The result is one of the two bf16 neighbours, and the nearest.
    const uint32_t lo_bits = [&] { uint32_t b; std::memcpy(&b, &f, 4); return b & 0xFFFF0000u; }();
    const float lo = FromBits(lo_bits), hi = FromBits(lo_bits + 0x10000u);
    if (!std::isfinite(hi)) continue;
    const double dlo = std::fabs(double(f) - lo), dhi = std::fabs(double(f) - hi);
    if (dlo < dhi) EXPECT_EQ(r, lo);
    if (dhi < dlo) EXPECT_EQ(r, hi);
  }
}

TEST(F16, Basics) {
  EXPECT_EQ(FloatToF16(1.0f), 0x3C00);
  EXPECT_EQ(FloatToF16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToF16(65520.0f), 0x7C00);  // ties away from max -> inf (IEEE)
  EXPECT_EQ(FloatToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(FloatToF16(kInf), 0x7C00);
  EXPECT_TRUE(std::isnan(F16ToFloat(FloatToF16(kNaN))));
  EXPECT_EQ(F16ToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even -> 0
  EXPECT_EQ(FloatToF16(std::ldexp(3.0f, -25)), 0x0002);  // tie to even -> 2
  EXPECT_EQ(FloatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
  for (uint32_t c = 0; c < 0x7C00; ++c) EXPECT_EQ(FloatToF16(F16ToFloat(c)), c) << c;
}

TEST(Fp8E4M3, AllCodesRoundTrip) {
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = Fp8E4M3ToFloat(static_cast<uint8_t>(c));
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(f)) << c;
      continue;
    }
    EXPECT_EQ(FloatToFp8E4M3(f), c) << c << " " << f;
  }
}

TEST(Fp8E4M3, SaturationAndSpecials) {
  EXPECT_EQ(Fp8E4M3ToFloat(0x7E), 448.0f);
  EXPECT_EQ(FloatToFp8E4M3(448.0f), 0x7E);
  EXPECT_EQ(FloatToFp8E4M3(1000.0f), 0x7E);
  EXPECT_EQ(FloatToFp8E4M3(-1e30f), 0xFE);
  EXPECT_EQ(FloatToFp8E4M3(kInf), 0x7E);
  EXPECT_EQ(FloatToFp8E4M3(-kInf), 0xFE);
  EXPECT_EQ(FloatToFp8E4M3(kNaN) & 0x7F, 0x7F);
  EXPECT_EQ(Fp8E4M3ToFloat(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(FloatToFp8E4M3(std::ldexp(1.0f, -10)), 0x00);  // tie to even -> 0
  EXPECT_EQ(FloatToFp8E4M3(std::ldexp(3.0f, -10)), 0x02);  // tie to even -> 2
  EXPECT_EQ(FloatToFp8E4M3(1.0625f), 0x38);  // 1 + 1/16: tie between 1 and 1.125 -> 1
  EXPECT_EQ(FloatToFp8E4M3(1.1875f), 0x3A);  // tie between 1.125 and 1.25 -> 1.25 (even)
}

TEST(Fp8E5M2, AllCodesRoundTripAndSaturate) {
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = Fp8E5M2ToFloat(static_cast<uint8_t>(c));
    if ((c & 0x7C) == 0x7C && (c & 0x03)) {
      EXPECT_TRUE(std::isnan(f)) << c;
      continue;
    }
    EXPECT_EQ(FloatToFp8E5M2(f), c) << c << " " << f;
  }
  EXPECT_EQ(Fp8E5M2ToFloat(0x7B), 57344.0f);
  EXPECT_EQ(FloatToFp8E5M2(1e6f), 0x7B);
  EXPECT_EQ(FloatToFp8E5M2(-1e6f), 0xFB);
  EXPECT_EQ(FloatToFp8E5M2(kInf), 0x7C);
  EXPECT_TRUE(std::isnan(Fp8E5M2ToFloat(FloatToFp8E5M2(kNaN))));
  EXPECT_EQ(Fp8E5M2ToFloat(0x01), std::ldexp(1.0f, -16));
}

TEST(DTypeNames, ParseAndSafetensors) {
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3, DType::kF8E5M2,
                  DType::kI32, DType::kI64}) {
    EXPECT_EQ(*ParseDType(DTypeName(d)), d);
    EXPECT_EQ(*DTypeFromSafetensors(SafetensorsDTypeName(d)), d);
  }
  EXPECT_FALSE(DTypeFromSafetensors("F64").ok());
  EXPECT_FALSE(ParseDType("float").ok());
}

}  // namespace
}  // namespace tandem::core
