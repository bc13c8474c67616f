// Tiny Nemotron-H models: built-in presets and a deterministic weight generator.
//
// The presets are small `nemotron_h` configurations (the embedded default and what the tests
// use). Weights are generated per tensor from (seed, tensor name) with std::mt19937_64 (whose
// output the C++ standard fixes) and our own uniform / Box-Muller sampling, so the same seed gives
// the same bytes with any standard library. Initialisation follows the real models so that
// activations stay O(1) through all layers:
//   A_log = log(U[1, 16]); dt_bias = softplus^-1(dt), dt = exp(U[log 0.001, log 0.1]) (>= 1e-4);
//   D = 1 + 0.1 N(0, 1); RMSNorm / gated-norm weights = 1 + 0.05 N(0, 1);
//   conv1d weight and bias ~ U(-1/sqrt(K), 1/sqrt(K)); linear layers N(0, 1) / sqrt(fan_in);
//   embedding N(0, 1).
// Pure functions (WriteTinyModel writes files); thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace tandem::core {

// "tiny" (default): hidden 64, 11 layers "M-M*-MM-M*-", Mamba 8 heads x 8 (4 groups, state 16),
//   attention 8 heads x 16 (4 KV heads), ffn 128, vocab 4096: TP in {1, 2, 4}.
// "tiny-7": hidden 96, 7 layers "M-M*-M-" (one attention layer, so some pipeline stages have
//   none), Mamba 12 heads x 8 (2 groups, state 32), attention 12 heads x 8 (2 KV heads), ffn 192,
//   vocab 4096: TP in {1, 2}.
// Layer counts 11 and 7 split evenly into neither 2 nor 3 stages. chunk_size 16 (prefill
// crosses chunk boundaries quickly), 1024 positions; time_step_min 0 (valid for HF's torch path,
// spec §7).
// "bench-512": hidden 512, 16 layers "M-M-M*-M-M-M*-M-" (7 Mamba, 2 attention, 7 MLP),
//   Mamba 16 heads x 64 (8 groups, state 64), attention 8 heads x 64 (4 KV heads),
//   ffn 2048, vocab 4096, chunk_size 64, 4096 positions: 35 M parameters, big enough that prefill
//   dominates a serving step on a CPU (the prefix-cache benchmark, bench/prefix_cache.sh).
//   TP in {1, 2, 4}.
constexpr absl::string_view kDefaultTinyPreset = "tiny";
std::vector<std::string> TinyPresetNames();
[[nodiscard]] absl::StatusOr<ModelConfig> TinyPreset(absl::string_view name);

// Weights for every tensor of `config` (ExpectedTensors order, embedding named
// backbone.embeddings.weight) in `dtype` (a floating dtype). Works for any config.
[[nodiscard]] absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> GenerateWeights(
    const ModelConfig& config, uint64_t seed, DType dtype);

struct TinyModelOptions {
  std::string preset = std::string(kDefaultTinyPreset);
  uint64_t seed = 0;
  DType dtype = DType::kBF16;  // kBF16 or kF32
  int num_shards = 1;          // > 1: model-0000k-of-0000n.safetensors + index
  // 0: the preset's, raised to cover every id of tokenizer_json (rounded up to a multiple of
  // 64) when one is given. Otherwise it must cover the tokenizer's ids.
  int64_t vocab_size = 0;
  std::string tokenizer_json;  // copied to DIR/tokenizer.json when not empty
};

// Writes a Hugging Face layout model directory: config.json (torch_dtype = options.dtype),
// the safetensors file(s), and tokenizer.json when given. Creates `dir`; replaces earlier
// model*.safetensors / index files there so that a re-run with another shard count stays valid.
[[nodiscard]] absl::Status WriteTinyModel(const TinyModelOptions& options, const std::string& dir);

}  // namespace tandem::core
