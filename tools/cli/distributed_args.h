// Options of the sub-commands that can run a model as tp x pp worker processes on this machine
// (--tp, --pp, --stage-layers, --collective). Without them (or with tp = pp = 1) the model runs
// in this process.
#pragma once

#include <optional>

#include "absl/status/statusor.h"
#include "tools/cli/command.h"
#include "tools/cli/model_args.h"
#include "worker/distributed_runner.h"
#include "worker/local_cluster.h"

namespace tandem::cli {

inline absl::StatusOr<std::optional<worker::LocalClusterOptions>> ParseDistributedArgs(
    const Args& args, const LocalModelArgs& margs) {
  auto tp = args.GetInt("tp", 1);
  if (!tp.ok()) return tp.status();
  auto pp = args.GetInt("pp", 1);
  if (!pp.ok()) return pp.status();
  if (*tp < 1 || *pp < 1) return absl::InvalidArgumentError("--tp and --pp must be >= 1");
  if (*tp * *pp == 1 && !args.Has("stage-layers")) return std::nullopt;
  worker::LocalClusterOptions o;
  o.model_dir = margs.model_dir;
  o.tp = static_cast<int>(*tp);
  o.pp = static_cast<int>(*pp);
  o.reference_kernels = margs.options.reference_kernels;
  o.collective = args.GetOr("collective", "gloo");
  if (args.Has("stage-layers")) {
    auto sizes = ParseIdList(*args.Get("stage-layers"), "--stage-layers");
    if (!sizes.ok()) return sizes.status();
    o.stage_layers = *sizes;
  }
  const int64_t tokens = static_cast<int64_t>(margs.tokens.size()) + 1024;
  o.num_slots = 1;
  o.num_blocks = (tokens + o.block_size - 1) / o.block_size;
  return o;
}

}  // namespace tandem::cli
