#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/logging.h"

namespace tandem::core {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

Shape ContiguousStrides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

std::shared_ptr<void> AllocateAligned(size_t bytes) {
  constexpr size_t kAlign = 64;
  const size_t rounded = ((bytes + kAlign - 1) / kAlign) * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
  TANDEM_CHECK(p != nullptr) << "out of host memory allocating " << bytes << " bytes";
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

Tensor Tensor::Empty(DType dtype, Shape shape) {
  for (int64_t d : shape) TANDEM_CHECK(d >= 0) << "negative dimension in " << ShapeToString(shape);
  Tensor t;
  t.dtype_ = dtype;
  t.strides_ = ContiguousStrides(shape);
  t.shape_ = std::move(shape);
  t.storage_ = AllocateAligned(t.nbytes());
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::Zeros(DType dtype, Shape shape) {
  Tensor t = Empty(dtype, std::move(shape));
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::View(void* data, DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.strides_ = ContiguousStrides(shape);
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::View(const void* data, DType dtype, Shape shape) {
  return View(const_cast<void*>(data), dtype, std::move(shape));
}

Tensor Tensor::ViewOf(std::shared_ptr<const void> owner, const void* data, DType dtype,
                      Shape shape) {
  Tensor t = View(data, dtype, std::move(shape));
  t.storage_ = std::const_pointer_cast<void>(std::move(owner));
  return t;
}

Tensor Tensor::Slice0(int64_t begin, int64_t end) const {
  TANDEM_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0])
      << "Slice0 [" << begin << ", " << end << ") of " << ShapeToString(shape_);
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.data_ = static_cast<char*>(data_) + begin * strides_[0] * DTypeSize(dtype_);
  return t;
}

absl::StatusOr<Tensor> Tensor::Reshape(Shape shape) const {
  if (!is_contiguous()) return absl::FailedPreconditionError("Reshape of a strided tensor");
  if (NumElements(shape) != numel()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot reshape ", ShapeToString(shape_),
                                                   " to ", ShapeToString(shape)));
  }
  Tensor t = *this;
  t.strides_ = ContiguousStrides(shape);
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Clone() const {
  TANDEM_CHECK(is_contiguous()) << "Clone of a strided tensor";
  Tensor t = Empty(dtype_, shape_);
  std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::ToF32() const { return To(DType::kF32); }

Tensor Tensor::To(DType dtype) const {
  TANDEM_CHECK(is_contiguous()) << "To() of a strided tensor";
  if (dtype == dtype_) return Clone();
  Tensor out = Empty(dtype, shape_);
  if (dtype == DType::kF32) {
    ConvertToF32(dtype_, data_, out.data<float>(), numel());
  } else if (dtype_ == DType::kF32) {
    ConvertFromF32(data<float>(), dtype, out.data_, numel());
  } else {
    Tensor f = ToF32();
    ConvertFromF32(f.data<float>(), dtype, out.data_, numel());
  }
  return out;
}

}  // namespace tandem::core
