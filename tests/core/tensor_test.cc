#include "core/tensor.h"

#include "gtest/gtest.h"

namespace tandem::core {
namespace {

TEST(Tensor, EmptyIsAlignedAndContiguous) {
  Tensor t = Tensor::Empty(DType::kBF16, {3, 5});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.nbytes(), 30u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.strides(), (Shape{5, 1}));
}

TEST(Tensor, SliceAndReshapeShareStorage) {
  Tensor t = Tensor::Zeros(DType::kF32, {4, 2});
  for (int i = 0; i < 8; ++i) t.data<float>()[i] = float(i);
  Tensor s = t.Slice0(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.data<float>()[0], 2.0f);
  auto r = t.Reshape({8});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data<float>(), t.data<float>());
  EXPECT_FALSE(t.Reshape({3, 3}).ok());
}

TEST(Tensor, ConvertsThroughF32) {
  Tensor t = Tensor::Empty(DType::kF32, {3});
  t.data<float>()[0] = 1.0f;
  t.data<float>()[1] = 1.00390625f;  // tie between bf16 neighbours -> 1.0
  t.data<float>()[2] = -3.0f;
  Tensor b = t.To(DType::kBF16);
  Tensor back = b.ToF32();
  EXPECT_EQ(back.data<float>()[0], 1.0f);
  EXPECT_EQ(back.data<float>()[1], 1.0f);
  EXPECT_EQ(back.data<float>()[2], -3.0f);
}

TEST(Tensor, ViewOfKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(4, 7.0f);
  Tensor v = Tensor::ViewOf(owner, owner->data(), DType::kF32, {4});
  owner.reset();
  EXPECT_EQ(v.data<float>()[3], 7.0f);
}

}  // namespace
}  // namespace tandem::core
