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

absl::StatusOr<core::Tensor> WeightLoader::Full(absl::string_view name, const core::Shape& shape) {
  RETURN_IF_ERROR(CheckShape(name, shape));
  ASSIGN_OR_RETURN(core::Tensor t, checkpoint_->Get(name));
  bytes_read_ += t.nbytes();
  return t.ToF32();
}

absl::StatusOr<core::Tensor> WeightLoader::Rows(absl::string_view name,
                                                const core::Shape& full_shape,
                                                const std::vector<RowRange>& ranges) {
  RETURN_IF_ERROR(CheckShape(name, full_shape));
  int64_t rows = 0;
  for (const RowRange& r : ranges) rows += r.end - r.begin;
  core::Shape shape = full_shape;
  shape[0] = rows;
  core::Tensor out = core::Tensor::Empty(core::DType::kF32, shape);
  const int64_t row_elems = rows == 0 ? 0 : out.numel() / rows;
  int64_t at = 0;
  for (const RowRange& r : ranges) {
    ASSIGN_OR_RETURN(core::Tensor part, checkpoint_->GetRows(name, r.begin, r.end));
    bytes_read_ += part.nbytes();
    core::ConvertToF32(part.dtype(), part.raw(), out.data<float>() + at * row_elems,
                       static_cast<size_t>(part.numel()));
    at += r.end - r.begin;
  }
  return out;
}

absl::StatusOr<core::Tensor> WeightLoader::Columns(absl::string_view name,
                                                   const core::Shape& full_shape, int64_t begin,
                                                   int64_t end) {
  RETURN_IF_ERROR(CheckShape(name, full_shape));
  ASSIGN_OR_RETURN(core::Tensor part, checkpoint_->ReadColumns(name, begin, end));
  bytes_read_ += part.nbytes();
  return part.ToF32();
}

}  // namespace tandem::model
