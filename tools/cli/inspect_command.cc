// tandem inspect: a model directory's configuration, sizes and state footprint, whole or per rank
// of a TP x PP layout; validates the checkpoint against the config when there is one.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/model_config.h"
#include "core/safetensors.h"
#include "nlohmann/json.hpp"
#include "sharding/layer_partition.h"
#include "sharding/model_stats.h"
#include "sharding/parallel_config.h"
#include "tools/cli/command.h"

namespace tandem::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using sharding::ModelStats;

constexpr char kName[] = "inspect";

struct CheckpointSummary {
  int64_t tensors = 0;
  uint64_t bytes = 0;
};

bool HasSafetensors(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".safetensors") return true;
  }
  return false;
}

std::string Bytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(n, " B") : absl::StrFormat("%.2f %s", v, units[u]);
}

std::string Count(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

Json StatsJson(const ModelStats& s) {
  Json j;
  j["parameters"] = s.parameters;
  j["weight_bytes"] = s.weight_bytes;
  j["layers"] = {
      {"mamba", s.mamba_layers}, {"attention", s.attention_layers}, {"mlp", s.mlp_layers}};
  j["ssm_state_bytes_per_sequence"] = s.ssm_state_bytes_per_sequence;
  j["conv_state_bytes_per_sequence"] = s.conv_state_bytes_per_sequence;
  j["kv_bytes_per_token"] = s.kv_bytes_per_token;
  return j;
}

// The largest value of each field over all ranks: what the most loaded rank holds.
ModelStats MaxOverStages(const std::vector<sharding::StageStats>& stages) {
  ModelStats m;
  for (const auto& st : stages) {
    const ModelStats& s = st.per_rank;
    m.parameters = std::max(m.parameters, s.parameters);
    m.weight_bytes = std::max(m.weight_bytes, s.weight_bytes);
    m.mamba_layers = std::max(m.mamba_layers, s.mamba_layers);
    m.attention_layers = std::max(m.attention_layers, s.attention_layers);
    m.mlp_layers = std::max(m.mlp_layers, s.mlp_layers);
    m.ssm_state_bytes_per_sequence =
        std::max(m.ssm_state_bytes_per_sequence, s.ssm_state_bytes_per_sequence);
    m.conv_state_bytes_per_sequence =
        std::max(m.conv_state_bytes_per_sequence, s.conv_state_bytes_per_sequence);
    m.kv_bytes_per_token = std::max(m.kv_bytes_per_token, s.kv_bytes_per_token);
  }
  return m;
}

std::string StatsLine(const core::ModelConfig& c, const ModelStats& s) {
  const std::string dtype(core::DTypeName(c.torch_dtype));
  return absl::StrCat(Count(s.parameters), " parameters (", Bytes(s.weight_bytes), " in ", dtype,
                      "); layers ", s.mamba_layers, " Mamba / ", s.attention_layers,
                      " attention / ", s.mlp_layers, " MLP; per sequence SSM ",
                      Bytes(s.ssm_state_bytes_per_sequence), " (f32) + conv ",
                      Bytes(s.conv_state_bytes_per_sequence), " (", dtype, "); KV ",
                      Bytes(s.kv_bytes_per_token), " per token");
}

void PrintHuman(const std::string& dir, const core::ModelConfig& c, const ModelStats& whole,
                const CheckpointSummary* checkpoint, const sharding::ParallelConfig& parallel,
                const std::vector<sharding::StageStats>& stages) {
  const std::string dtype(core::DTypeName(c.torch_dtype));
  std::printf("%s: %s, %s, %lld layers, pattern %s\n", dir.c_str(), c.model_type.c_str(),
              dtype.c_str(), static_cast<long long>(c.num_hidden_layers),
              c.hybrid_override_pattern.c_str());
  std::printf("  hidden %lld, vocab %lld, MLP ffn %lld\n", static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.vocab_size), static_cast<long long>(c.intermediate_size));
  std::printf("  attention: %lld heads x %lld, %lld KV heads\n",
              static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.head_dim),
              static_cast<long long>(c.num_key_value_heads));
  std::printf("  Mamba-2: %lld heads x %lld, %lld groups, state %lld, conv %lld, chunk %lld\n",
              static_cast<long long>(c.mamba_num_heads), static_cast<long long>(c.mamba_head_dim),
              static_cast<long long>(c.n_groups), static_cast<long long>(c.ssm_state_size),
              static_cast<long long>(c.conv_kernel), static_cast<long long>(c.chunk_size));
  std::printf("whole model: %s\n", StatsLine(c, whole).c_str());
  std::printf("valid tp sizes: %s\n", absl::StrJoin(sharding::ValidTpSizes(c), ", ").c_str());
  if (checkpoint != nullptr) {
    std::printf("checkpoint: %s tensors, %s; names and shapes match the config\n",
                Count(checkpoint->tensors).c_str(), Bytes(checkpoint->bytes).c_str());
  } else {
    std::printf("checkpoint: none (config only)\n");
  }
  if (parallel.tp == 1 && parallel.pp == 1) return;
  std::printf("layout %s, per rank:\n", parallel.ToString().c_str());
  for (const auto& st : stages) {
    std::printf("  stage %d layers %s: %s\n", st.stage, st.layers.ToString().c_str(),
                StatsLine(c, st.per_rank).c_str());
  }
}

int Run(const Args& args) {
  if (auto s = args.CheckKnown({"json", "tp", "pp", "partition"}); !s.ok()) return Fail(kName, s);
  if (args.positional().size() != 1) {
    return Fail(kName, absl::InvalidArgumentError(
                           "expected exactly one argument: a model or config directory"));
  }
  const std::string dir = args.positional()[0];
  auto config = core::ModelConfig::FromFile((fs::path(dir) / "config.json").string());
  if (!config.ok()) return Fail(kName, config.status());

  CheckpointSummary summary;
  const bool has_checkpoint = HasSafetensors(dir);
  if (has_checkpoint) {
    auto checkpoint = core::Checkpoint::Open(dir);
    if (!checkpoint.ok()) return Fail(kName, checkpoint.status());
    if (auto s = core::ValidateCheckpoint(*config, *checkpoint); !s.ok()) {
      return Fail(
          kName, absl::Status(s.code(), absl::StrCat("checkpoint in ", dir,
                                                     " does not match its config: ", s.message())));
    }
    summary.tensors = static_cast<int64_t>(checkpoint->Names().size());
    summary.bytes = checkpoint->TotalTensorBytes();
  }

  std::vector<int64_t> sizes;  // --partition: layers per stage
  if (args.Has("partition")) {
    auto parsed = ParseIdList(args.GetOr("partition", ""), "--partition");
    if (!parsed.ok()) return Fail(kName, parsed.status());
    sizes = *parsed;
  }
  auto tp = args.GetInt("tp", 1);
  if (!tp.ok()) return Fail(kName, tp.status());
  auto pp = args.GetInt("pp", sizes.empty() ? 1 : static_cast<int64_t>(sizes.size()));
  if (!pp.ok()) return Fail(kName, pp.status());
  const auto clamp = [](int64_t v) {
    return static_cast<int>(std::clamp<int64_t>(v, -1, 1 << 20));
  };
  const sharding::ParallelConfig parallel{clamp(*tp), clamp(*pp)};
  if (auto s = parallel.Validate(*config); !s.ok()) return Fail(kName, s);
  auto partition = sizes.empty() ? sharding::BalancedPartition(*config, parallel.pp)
                                 : sharding::PartitionFromSizes(*config, sizes);
  if (!partition.ok()) return Fail(kName, partition.status());
  auto stages = sharding::ComputeStageStats(*config, parallel, *partition);
  if (!stages.ok()) return Fail(kName, stages.status());
  const ModelStats whole = sharding::WholeModelStats(*config);

  if (!args.Has("json")) {
    PrintHuman(dir, *config, whole, has_checkpoint ? &summary : nullptr, parallel, *stages);
    return 0;
  }
  // Top level: what one rank holds (the most loaded rank, field by field); with tp = pp = 1
  // that is the whole model.
  Json j = StatsJson(MaxOverStages(*stages));
  j["model_type"] = config->model_type;
  j["dtype"] = std::string(core::DTypeName(config->torch_dtype));
  j["hybrid_override_pattern"] = config->hybrid_override_pattern;
  j["num_hidden_layers"] = config->num_hidden_layers;
  j["hidden_size"] = config->hidden_size;
  j["vocab_size"] = config->vocab_size;
  j["valid_tp_sizes"] = sharding::ValidTpSizes(*config);
  j["tp"] = parallel.tp;
  j["pp"] = parallel.pp;
  j["model"] = StatsJson(whole);
  Json stage_list = Json::array();
  for (const auto& st : *stages) {
    Json s = StatsJson(st.per_rank);
    s["stage"] = st.stage;
    s["layer_begin"] = st.layers.begin;
    s["layer_end"] = st.layers.end;
    stage_list.push_back(std::move(s));
  }
  j["stages"] = std::move(stage_list);
  if (has_checkpoint) {
    j["checkpoint"] = {{"tensors", summary.tensors}, {"bytes", summary.bytes}, {"valid", true}};
  } else {
    j["checkpoint"] = nullptr;
  }
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

TANDEM_COMMAND(kName, "show a model's configuration, parameter count and state sizes",
               "DIR [--json] [--tp N] [--pp N] [--partition N,N,...]\n\n"
               "DIR holds config.json and optionally the safetensors checkpoint, which is then "
               "validated against the config. With --tp/--pp the numbers are per rank: the "
               "top-level JSON fields give the most loaded rank and \"stages\" each stage's "
               "layer range and per-rank numbers; \"model\" is always the whole model. Stages "
               "are balanced by cost unless --partition gives the layer count of each.\n\n"
               "  --json                JSON instead of text (default off)\n"
               "  --tp N                tensor-parallel ranks per stage (default 1)\n"
               "  --pp N                pipeline stages (default 1, or the --partition length)\n"
               "  --partition A,B,...   layers per stage (default: balanced by cost)",
               {"json"}, Run);

}  // namespace
}  // namespace tandem::cli
