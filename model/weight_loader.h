// Reads one rank's slice of checkpoint tensors as f32 host tensors.
//
// Load(slice) reads what a sharding::TensorSlice describes (sharding/shard_plan.h decides which
// rows or columns a TP rank holds, e.g. the z|x|B|C|dt segments of a Mamba in_proj, model spec
// §4.1): replicated tensors whole, row ranges of dimension 0 concatenated, column ranges of a
// 2-D tensor concatenated. Only the bytes of the slice are read from the memory-mapped file, and
// every result is converted to an owning f32 tensor (the CPU backend computes in f32). The
// checkpoint's shape must equal the slice's full shape, so a wrong checkpoint is an error naming
// the tensor.
// bytes_read() reports how many checkpoint bytes this loader read (per-rank memory accounting),
// tensors_loaded() how many tensors (load progress).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "sharding/shard_plan.h"

namespace tandem::model {

class WeightLoader {
 public:
  explicit WeightLoader(const core::Checkpoint* checkpoint) : checkpoint_(checkpoint) {}

  // The slice of one checkpoint tensor, as an owning f32 tensor of slice.local_shape.
  [[nodiscard]] absl::StatusOr<core::Tensor> Load(const sharding::TensorSlice& slice);
  // The slice of `name` held by TP rank `tp_rank` of `tp` (sharding::SliceTensor, then Load).
  [[nodiscard]] absl::StatusOr<core::Tensor> Load(const core::ModelConfig& config,
                                                  absl::string_view name, int tp, int tp_rank);
  uint64_t bytes_read() const { return bytes_read_; }
  int64_t tensors_loaded() const { return tensors_loaded_; }

 private:
  absl::Status CheckShape(absl::string_view name, const core::Shape& shape) const;
  const core::Checkpoint* checkpoint_;
  uint64_t bytes_read_ = 0;
  int64_t tensors_loaded_ = 0;
};

}  // namespace tandem::model
