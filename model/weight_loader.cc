#include "model/weight_loader.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace tandem::model {

absl::Status WeightLoader::CheckShape(absl::string_view name, const core::Shape& shape) const {
  ASSIGN_OR_RETURN(core::TensorInfo info, checkpoint_->Info(name));
  if (info.shape != shape) {
    ASSIGN_OR_RETURN(std::string file, checkpoint_->FileOf(name));
    return absl::InvalidArgumentError(absl::StrCat(file, ": tensor ", name, ": expected shape ",
                                                   core::ShapeToString(shape), ", found ",
                                                   core::ShapeToString(info.shape)));
  }
  if (!core::IsFloating(info.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", name, ": dtype ", core::DTypeName(info.dtype), " is not a floating type"));
  }
  return absl::OkStatus();
}

absl::StatusOr<core::Tensor> WeightLoader::Load(const sharding::TensorSlice& slice) {
  RETURN_IF_ERROR(CheckShape(slice.name, slice.full_shape));
  ++tensors_loaded_;
  if (slice.split == sharding::SplitKind::kReplicated) {
    ASSIGN_OR_RETURN(core::Tensor t, checkpoint_->Get(slice.name));
    bytes_read_ += t.nbytes();
    return t.ToF32();
  }
  core::Tensor out = core::Tensor::Empty(core::DType::kF32, slice.local_shape);
  if (slice.split == sharding::SplitKind::kRows) {
    const int64_t row_elems = slice.local_shape[0] == 0 ? 0 : out.numel() / slice.local_shape[0];
    int64_t at = 0;
    for (const sharding::IndexRange& r : slice.ranges) {
      ASSIGN_OR_RETURN(core::Tensor part, checkpoint_->GetRows(slice.name, r.begin, r.end));
      bytes_read_ += part.nbytes();
      core::ConvertToF32(part.dtype(), part.raw(), out.data<float>() + at * row_elems,
                         static_cast<size_t>(part.numel()));
      at += r.size();
    }
    return out;
  }
  // Columns of a 2-D tensor: each range lands at its offset within every output row.
  const int64_t rows = slice.local_shape[0], cols = slice.local_shape[1];
  int64_t at = 0;
  for (const sharding::IndexRange& r : slice.ranges) {
    ASSIGN_OR_RETURN(core::Tensor part, checkpoint_->ReadColumns(slice.name, r.begin, r.end));
    bytes_read_ += part.nbytes();
    const core::Tensor f = part.ToF32();
    for (int64_t i = 0; i < rows; ++i) {
      std::memcpy(out.data<float>() + i * cols + at, f.data<float>() + i * r.size(),
                  r.size() * sizeof(float));
    }
    at += r.size();
  }
  return out;
}

absl::StatusOr<core::Tensor> WeightLoader::Load(const core::ModelConfig& config,
                                                absl::string_view name, int tp, int tp_rank) {
  ASSIGN_OR_RETURN(sharding::TensorSlice slice, sharding::SliceTensor(config, name, tp, tp_rank));
  return Load(slice);
}

}  // namespace tandem::model
