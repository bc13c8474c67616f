#include "sharding/parallel_config.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::sharding {
namespace {

struct SplitDim {
  const char* name;
  int64_t value;
};

std::vector<SplitDim> TpSplitDims(const core::ModelConfig& c) {
  return {{"n_groups", c.n_groups},
          {"num_key_value_heads", c.num_key_value_heads},
          {"mamba_num_heads", c.mamba_num_heads},
          {"num_attention_heads", c.num_attention_heads},
          {"intermediate_size", c.intermediate_size},
          {"vocab_size", c.vocab_size}};
}

}  // namespace

std::string ParallelConfig::ToString() const { return absl::StrCat("tp=", tp, " pp=", pp); }

std::vector<int> ValidTpSizes(const core::ModelConfig& config) {
  int64_t g = 0;
  for (const auto& dim : TpSplitDims(config)) g = std::gcd(g, dim.value);
  std::vector<int> sizes;
  for (int64_t t = 1; t <= g && t <= (1 << 20); ++t) {
    if (g % t == 0) sizes.push_back(static_cast<int>(t));
  }
  if (sizes.empty()) sizes.push_back(1);
  return sizes;
}

absl::Status ParallelConfig::Validate(const core::ModelConfig& config) const {
  if (tp < 1) {
    return absl::InvalidArgumentError(absl::StrCat("tp must be at least 1, got ", tp));
  }
  for (const auto& dim : TpSplitDims(config)) {
    if (dim.value % tp != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tp=", tp, " does not divide ", dim.name, " (", dim.value,
          "); valid tp sizes for this model: ", absl::StrJoin(ValidTpSizes(config), ", ")));
    }
  }
  if (pp < 1 || pp > config.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("pp=", pp, " is not in [1, num_hidden_layers = ", config.num_hidden_layers,
                     "]: every pipeline stage needs at least one layer"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::sharding
