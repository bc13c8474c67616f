// Options shared by the sub-commands that run a model in this process (--model, --tokens,
// --reference-kernels).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/nemotron_h_model.h"
#include "tools/cli/command.h"

namespace tandem::cli {

struct LocalModelArgs {
  std::string model_dir;
  std::vector<int32_t> tokens;
  model::ModelOptions options;
};

inline absl::StatusOr<LocalModelArgs> ParseLocalModelArgs(const Args& args) {
  LocalModelArgs out;
  out.model_dir = args.GetOr("model", "");
  if (out.model_dir.empty()) return absl::InvalidArgumentError("--model DIR is required");
  if (!args.Has("tokens")) return absl::InvalidArgumentError("--tokens 1,2,3 is required");
  auto ids = ParseIdList(*args.Get("tokens"), "--tokens");
  if (!ids.ok()) return ids.status();
  for (int64_t id : *ids) {
    if (id < 0 || id > INT32_MAX) {
      return absl::InvalidArgumentError("--tokens: token id out of range: " + std::to_string(id));
    }
    out.tokens.push_back(static_cast<int32_t>(id));
  }
  if (out.tokens.empty()) return absl::InvalidArgumentError("--tokens: the prompt is empty");
  out.options.reference_kernels = args.Has("reference-kernels");
  return out;
}

}  // namespace tandem::cli
