// Reads one rank's slice of checkpoint tensors as f32 host tensors.
//
// Rows(name, ranges) concatenates row ranges of dimension 0 (e.g. the z|x|B|C|dt segments of a
// Mamba in_proj under TP, model spec §4.1); Columns(name, b, e) copies a column range of a 2-D
// tensor. Only the bytes of the requested slice are read from the memory-mapped file, and every
// result is converted to an owning f32 tensor (the CPU backend computes in f32). Shapes are
// checked against the caller's expectation, so a wrong checkpoint is an error naming the tensor.
// bytes_read() reports how many checkpoint bytes this loader read (per-rank memory accounting).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/safetensors.h"
#include "core/tensor.h"

namespace tandem::model {

struct RowRange {
  int64_t begin = 0;
  int64_t end = 0;
};

class WeightLoader {
 public:
  explicit WeightLoader(const core::Checkpoint* checkpoint) : checkpoint_(checkpoint) {}

  // The whole tensor; its shape must equal `shape`.
  [[nodiscard]] absl::StatusOr<core::Tensor> Full(absl::string_view name, const core::Shape& shape);
  // Row ranges of dim 0 concatenated; the checkpoint tensor must have shape `full_shape`.
  [[nodiscard]] absl::StatusOr<core::Tensor> Rows(absl::string_view name,
                                                  const core::Shape& full_shape,
                                                  const std::vector<RowRange>& ranges);
  // Columns [begin, end) of a 2-D tensor of shape `full_shape`.
  [[nodiscard]] absl::StatusOr<core::Tensor> Columns(absl::string_view name,
                                                     const core::Shape& full_shape, int64_t begin,
                                                     int64_t end);
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  absl::Status CheckShape(absl::string_view name, const core::Shape& shape) const;
  const core::Checkpoint* checkpoint_;
  uint64_t bytes_read_ = 0;
};

}  // namespace tandem::model
