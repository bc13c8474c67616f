// Nemotron-H model configuration (Hugging Face config.json, model_type "nemotron_h").
//
// FromJson validates everything the runtime relies on: required fields present and positive,
// hybrid_override_pattern of M / * / - only with length num_hidden_layers (E = MoE is rejected
// with a clear "not supported yet"), mamba_num_heads % n_groups == 0 (so d_inner splits into
// n_groups norm groups), num_attention_heads % num_key_value_heads == 0.
// Both attention_head_dim and head_dim are accepted (else hidden_size / num_attention_heads);
// both torch_dtype and dtype (transformers 5); transformers 5's layers_block_type list in place of
// (or agreeing with) hybrid_override_pattern, num_hidden_layers then optional. Python's bare
// Infinity / NaN tokens (json.dump of float('inf'), e.g. in time_step_limit) are accepted where a
// number is expected. Only the variant the runtime implements is accepted (Unimplemented
// otherwise): silu / relu2 activations, conv1d bias on, no other biases, residual_in_fp32 false.
// Errors are InvalidArgument (or Unimplemented) naming the field and its value.
// A plain value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "core/safetensors.h"
#include "core/tensor.h"

namespace tandem::core {

enum class LayerKind : char { kMamba = 'M', kAttention = '*', kMlp = '-' };

struct ModelConfig {
  std::string model_type = "nemotron_h";
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t vocab_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t mamba_num_heads = 0;
  int64_t mamba_head_dim = 0;
  int64_t ssm_state_size = 0;
  int64_t n_groups = 0;
  int64_t conv_kernel = 4;
  int64_t chunk_size = 128;
  int64_t max_position_embeddings = 8192;
  double layer_norm_epsilon = 1e-5;
  bool use_conv_bias = true;
  bool mamba_proj_bias = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  std::string mamba_hidden_act = "silu";
  std::string mlp_hidden_act = "relu2";
  double time_step_min = 0.001;  // init-only (the HF torch slow path floors dt with it)
  double time_step_limit_min = 0.0;
  double time_step_limit_max = 1e30;  // (0, inf) = no clamp; values >= 1e30 mean infinity
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  int64_t pad_token_id = 0;  // token ids: -1 where config.json has null
  DType torch_dtype = DType::kBF16;
  std::string hybrid_override_pattern;
  std::vector<LayerKind> layers;  // from the pattern

  // Derived dimensions.
  int64_t d_inner() const { return mamba_num_heads * mamba_head_dim; }
  int64_t conv_dim() const { return d_inner() + 2 * n_groups * ssm_state_size; }
  int64_t in_proj_dim() const { return d_inner() + conv_dim() + mamba_num_heads; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t CountLayers(LayerKind kind) const;

  bool operator==(const ModelConfig&) const = default;

  [[nodiscard]] static absl::StatusOr<ModelConfig> FromJson(absl::string_view json);
  [[nodiscard]] static absl::StatusOr<ModelConfig> FromFile(const std::string& path);
  // config.json text in Hugging Face's spelling (round-trips through FromJson).
  std::string ToJson() const;
};

struct ExpectedTensor {
  std::string name;
  Shape shape;
};

// Every tensor a checkpoint of `config` must hold, with its shape, in layer order. The embedding
// is listed as backbone.embeddings.weight.
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);

// The embedding's name in `checkpoint`: backbone.embeddings.weight or backbone.embedding.weight.
absl::StatusOr<std::string> EmbeddingName(const Checkpoint& checkpoint);

// Checks that `checkpoint` holds every expected tensor with the expected shape and a floating
// dtype; names the first missing or mis-shaped tensor (and its file). Extra tensors other than
// mtp.* are an error too.
[[nodiscard]] absl::Status ValidateCheckpoint(const ModelConfig& config,
                                              const Checkpoint& checkpoint);

}  // namespace tandem::core
