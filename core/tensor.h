// Tensor: a typed, shaped, strided block of host memory, owning or not.
//
// A Tensor either owns its storage (Tensor::Empty / Zeros allocate 64-byte aligned host memory,
// shared between copies of the Tensor object by reference count) or is a non-owning view
// (Tensor::View over memory someone else keeps alive: an mmapped checkpoint, a state pool).
// Strides are in elements. Copying a Tensor never copies data. Not thread-safe for concurrent
// writes to the same elements; distinct tensors are independent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace tandem::core {

using Shape = std::vector<int64_t>;

int64_t NumElements(const Shape& shape);
std::string ShapeToString(const Shape& shape);  // "[2, 3]"
Shape ContiguousStrides(const Shape& shape);

// 64-byte aligned host allocation; the deleter frees it.
std::shared_ptr<void> AllocateAligned(size_t bytes);

class Tensor {
 public:
  Tensor() = default;

  // Allocates uninitialised / zeroed contiguous storage.
  static Tensor Empty(DType dtype, Shape shape);
  static Tensor Zeros(DType dtype, Shape shape);
  // A non-owning contiguous view of `data`; the caller keeps the memory alive.
  static Tensor View(void* data, DType dtype, Shape shape);
  static Tensor View(const void* data, DType dtype, Shape shape);
  // A contiguous view of `data` that keeps `owner` (e.g. a memory mapping) alive.
  static Tensor ViewOf(std::shared_ptr<const void> owner, const void* data, DType dtype,
                       Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return NumElements(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  bool is_contiguous() const { return strides_ == ContiguousStrides(shape_); }
  bool defined() const { return data_ != nullptr || numel() == 0; }
  bool owns_storage() const { return storage_ != nullptr; }

  void* raw() const { return data_; }
  template <typename T>
  T* data() const {
    return static_cast<T*>(data_);
  }

  // Rows [begin, end) of dimension 0, sharing storage.
  Tensor Slice0(int64_t begin, int64_t end) const;
  // Same elements, new shape; requires a contiguous tensor and equal element count.
  absl::StatusOr<Tensor> Reshape(Shape shape) const;
  // A contiguous, owning copy in f32 (any floating dtype), or a copy in `dtype`.
  Tensor ToF32() const;
  Tensor To(DType dtype) const;
  Tensor Clone() const;

 private:
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Shape shape_;
  Shape strides_;
};

}  // namespace tandem::core
