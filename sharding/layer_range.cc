#include "sharding/layer_range.h"

#include "absl/strings/str_cat.h"

namespace tandem::sharding {

std::string LayerRange::ToString() const { return absl::StrCat("[", begin, ", ", end, ")"); }

absl::Status ValidatePartition(const std::vector<LayerRange>& partition, int64_t num_stages,
                               int64_t num_layers) {
  if (static_cast<int64_t>(partition.size()) != num_stages) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer partition has ", partition.size(), " stages, expected ", num_stages));
  }
  int64_t next = 0;
  for (size_t s = 0; s < partition.size(); ++s) {
    const LayerRange& r = partition[s];
    if (r.begin != next || r.end <= r.begin || r.end > num_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer partition stage ", s, " is ", r.ToString(),
                       "; expected a non-empty range starting at layer ", next, " inside [0, ",
                       num_layers, ")"));
    }
    next = r.end;
  }
  if (next != num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer partition covers layers [0, ", next, ") of ", num_layers));
  }
  return absl::OkStatus();
}

}  // namespace tandem::sharding
