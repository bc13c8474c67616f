#include "core/model_config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/json_limits.h"
#include "core/status.h"
#include "nlohmann/json.hpp"

namespace tandem::core {
namespace {

using Json = nlohmann::json;

// The largest config.json read (real ones are a few KiB).
constexpr size_t kMaxConfigBytes = size_t{16} << 20;

// Python's json module writes float('inf') as a bare Infinity token (and NaN as NaN), which is
// not JSON; nlohmann rejects it. Outside strings, such tokens become these marker strings, which
// only ReadDouble turns back into numbers (anywhere else they fail the type check).
constexpr absl::string_view kPosInfMarker = "__tandem_json_Infinity__";
constexpr absl::string_view kNegInfMarker = "__tandem_json_-Infinity__";
constexpr absl::string_view kNanMarker = "__tandem_json_NaN__";
constexpr double kInfinityStandIn = 1e30;

bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string ReplaceNonFiniteTokens(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < text.size()) {
        out.push_back(text[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out.push_back(c);
      continue;
    }
    const bool boundary_before = i == 0 || !IsIdentChar(text[i - 1]);
    auto token_at = [&](size_t pos, absl::string_view token) {
      return text.substr(pos, token.size()) == token &&
             (pos + token.size() == text.size() || !IsIdentChar(text[pos + token.size()]));
    };
    if (boundary_before && token_at(i, "Infinity")) {
      absl::StrAppend(&out, "\"", kPosInfMarker, "\"");
      i += 7;
    } else if (c == '-' && token_at(i + 1, "Infinity")) {
      absl::StrAppend(&out, "\"", kNegInfMarker, "\"");
      i += 8;
    } else if (boundary_before && token_at(i, "NaN")) {
      absl::StrAppend(&out, "\"", kNanMarker, "\"");
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Describe(const Json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return absl::StrCat(value.type_name(), " ", text);
}

absl::Status TypeError(absl::string_view key, absl::string_view expected, const Json& value) {
  return absl::InvalidArgumentError(
      absl::StrCat("config field ", key, ": expected ", expected, ", got ", Describe(value)));
}

absl::Status Missing(absl::string_view key) {
  return absl::InvalidArgumentError(absl::StrCat("config field ", key, " is required but missing"));
}

const Json* Find(const Json& root, const char* key) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status ReadInt(const Json& root, const char* key, bool required, int64_t* out) {
  const Json* v = Find(root, key);
  if (v == nullptr) return required ? Missing(key) : absl::OkStatus();
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return TypeError(key, "an integer that fits in int64", *v);
    }
    *out = static_cast<int64_t>(v->get<uint64_t>());
    return absl::OkStatus();
  }
  if (!v->is_number_integer()) return TypeError(key, "an integer", *v);
  *out = v->get<int64_t>();
  return absl::OkStatus();
}

absl::StatusOr<double> JsonToDouble(absl::string_view key, const Json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == kPosInfMarker) return std::numeric_limits<double>::infinity();
    if (s == kNegInfMarker) return -std::numeric_limits<double>::infinity();
    if (s == kNanMarker) return std::numeric_limits<double>::quiet_NaN();
  }
  return TypeError(key, "a number", v);
}

absl::Status ReadDouble(const Json& root, const char* key, double* out) {
  const Json* v = Find(root, key);
  if (v == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(*out, JsonToDouble(key, *v));
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& root, const char* key, bool* out) {
  const Json* v = Find(root, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return TypeError(key, "true or false", *v);
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status ReadString(const Json& root, const char* key, bool required, std::string* out) {
  const Json* v = Find(root, key);
  if (v == nullptr) return required ? Missing(key) : absl::OkStatus();
  if (!v->is_string()) return TypeError(key, "a string", *v);
  *out = v->get<std::string>();
  return absl::OkStatus();
}

// bos/eos/pad: an integer, null (-1: none), or a list whose first entry is used.
absl::Status ReadTokenId(const Json& root, const char* key, int64_t* out) {
  auto it = root.find(key);
  if (it == root.end()) return absl::OkStatus();
  if (it->is_null()) {
    *out = -1;
    return absl::OkStatus();
  }
  if (it->is_array()) {
    if (it->empty() || !(*it)[0].is_number_integer()) {
      return TypeError(key, "a token id or a non-empty list of token ids", *it);
    }
    *out = (*it)[0].get<int64_t>();
    return absl::OkStatus();
  }
  return ReadInt(root, key, false, out);
}

absl::Status RequirePositive(absl::string_view key, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("config field ", key, " must be positive, got ", value));
}

absl::Status RequireDivisible(absl::string_view what, int64_t a, absl::string_view by_what,
                              int64_t b) {
  if (a % b == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " (", a, ") must be divisible by ", by_what, " (", b, ")"));
}

absl::StatusOr<DType> ParseTorchDType(absl::string_view key, absl::string_view name) {
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float32" || name == "float") return DType::kF32;
  if (name == "float16" || name == "half") return DType::kF16;
  return absl::InvalidArgumentError(absl::StrCat("config field ", key, ": '", name,
                                                 "' is not one of bfloat16, float16, float32"));
}

absl::string_view TorchDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "float32";
    case DType::kF16:
      return "float16";
    default:
      return "bfloat16";
  }
}

absl::Status ParsePattern(ModelConfig& c) {
  c.layers.clear();
  for (size_t i = 0; i < c.hybrid_override_pattern.size(); ++i) {
    const char ch = c.hybrid_override_pattern[i];
    switch (ch) {
      case 'M':
        c.layers.push_back(LayerKind::kMamba);
        break;
      case '*':
        c.layers.push_back(LayerKind::kAttention);
        break;
      case '-':
        c.layers.push_back(LayerKind::kMlp);
        break;
      case 'E':
        return absl::UnimplementedError(
            absl::StrCat("config field hybrid_override_pattern: layer ", i,
                         " is 'E': MoE layers ('E') are not supported yet"));
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "config field hybrid_override_pattern: layer ", i, " is '", std::string(1, ch),
            "', expected one of 'M' (Mamba-2), '*' (attention), '-' (MLP)"));
    }
  }
  if (static_cast<int64_t>(c.layers.size()) != c.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("config field hybrid_override_pattern has ", c.layers.size(),
                     " layers but num_hidden_layers is ", c.num_hidden_layers));
  }
  return absl::OkStatus();
}

// The layer pattern: hybrid_override_pattern ("M-M*-"), or transformers 5's layers_block_type
// (["mamba" | "linear_attention", "attention" | "full_attention", "mlp", "moe"]); if both are
// given they must agree.
absl::Status ReadPattern(const Json& j, ModelConfig& c) {
  const Json* pattern = Find(j, "hybrid_override_pattern");
  const Json* list = Find(j, "layers_block_type");
  if (pattern == nullptr && list == nullptr) return Missing("hybrid_override_pattern");
  if (pattern != nullptr) {
    RETURN_IF_ERROR(ReadString(j, "hybrid_override_pattern", true, &c.hybrid_override_pattern));
  }
  if (list == nullptr) return absl::OkStatus();
  if (!list->is_array()) return TypeError("layers_block_type", "a list of layer types", *list);
  std::string from_list;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& type = (*list)[i];
    const std::string name = type.is_string() ? type.get<std::string>() : "";
    if (name == "mamba" || name == "linear_attention") {
      from_list.push_back('M');
    } else if (name == "attention" || name == "full_attention") {
      from_list.push_back('*');
    } else if (name == "mlp") {
      from_list.push_back('-');
    } else if (name == "moe") {
      from_list.push_back('E');
    } else {
      return TypeError(absl::StrCat("layers_block_type[", i, "]"),
                       "one of mamba, linear_attention, attention, full_attention, mlp, moe", type);
    }
  }
  if (pattern != nullptr && from_list != c.hybrid_override_pattern) {
    return absl::InvalidArgumentError(
        absl::StrCat("config fields hybrid_override_pattern (", c.hybrid_override_pattern,
                     ") and layers_block_type (", from_list, ") disagree"));
  }
  c.hybrid_override_pattern = from_list;
  return absl::OkStatus();
}

absl::Status RequireFlag(absl::string_view key, bool value, bool supported, absl::string_view why) {
  if (value == supported) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      "config field ", key, " = ", value ? "true" : "false", " is not supported yet (", why, ")"));
}

absl::Status FromJsonObject(const Json& j, ModelConfig& c) {
  if (!j.is_object()) return TypeError("(top level)", "a JSON object", j);
  RETURN_IF_ERROR(ReadString(j, "model_type", true, &c.model_type));
  if (c.model_type != "nemotron_h") {
    return absl::InvalidArgumentError(
        absl::StrCat("config field model_type is '", c.model_type, "', expected 'nemotron_h'"));
  }
  struct RequiredInt {
    const char* key;
    int64_t* field;
  };
  const RequiredInt required[] = {
      {"hidden_size", &c.hidden_size},
      {"num_hidden_layers", &c.num_hidden_layers},
      {"vocab_size", &c.vocab_size},
      {"intermediate_size", &c.intermediate_size},
      {"num_attention_heads", &c.num_attention_heads},
      {"num_key_value_heads", &c.num_key_value_heads},
      {"mamba_num_heads", &c.mamba_num_heads},
      {"mamba_head_dim", &c.mamba_head_dim},
      {"ssm_state_size", &c.ssm_state_size},
      {"n_groups", &c.n_groups},
  };
  RETURN_IF_ERROR(ReadPattern(j, c));
  // transformers 5 derives the layer count from layers_block_type and may not write it.
  const bool derived_layer_count =
      Find(j, "num_hidden_layers") == nullptr && Find(j, "layers_block_type") != nullptr;
  if (derived_layer_count) {
    c.num_hidden_layers = static_cast<int64_t>(c.hybrid_override_pattern.size());
  }
  for (const auto& r : required) {
    if (r.field == &c.num_hidden_layers && derived_layer_count) continue;
    RETURN_IF_ERROR(ReadInt(j, r.key, true, r.field));
  }

  // head_dim (newer) and attention_head_dim (older) both name the attention head size.
  int64_t head_dim = 0, attention_head_dim = 0;
  RETURN_IF_ERROR(ReadInt(j, "head_dim", false, &head_dim));
  RETURN_IF_ERROR(ReadInt(j, "attention_head_dim", false, &attention_head_dim));
  const bool has_head_dim = Find(j, "head_dim") != nullptr;
  const bool has_attention_head_dim = Find(j, "attention_head_dim") != nullptr;
  if (has_head_dim && has_attention_head_dim && head_dim != attention_head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("config fields head_dim (", head_dim,
                                                   ") and attention_head_dim (", attention_head_dim,
                                                   ") disagree"));
  }

  RETURN_IF_ERROR(ReadInt(j, "conv_kernel", false, &c.conv_kernel));
  RETURN_IF_ERROR(ReadInt(j, "chunk_size", false, &c.chunk_size));
  RETURN_IF_ERROR(ReadInt(j, "max_position_embeddings", false, &c.max_position_embeddings));
  RETURN_IF_ERROR(ReadDouble(j, "layer_norm_epsilon", &c.layer_norm_epsilon));
  RETURN_IF_ERROR(ReadBool(j, "use_conv_bias", &c.use_conv_bias));
  RETURN_IF_ERROR(ReadBool(j, "mamba_proj_bias", &c.mamba_proj_bias));
  bool use_bias = false;
  RETURN_IF_ERROR(ReadBool(j, "use_bias", &use_bias));
  RETURN_IF_ERROR(ReadBool(j, "attention_bias", &c.attention_bias));
  RETURN_IF_ERROR(ReadBool(j, "mlp_bias", &c.mlp_bias));
  RETURN_IF_ERROR(ReadBool(j, "tie_word_embeddings", &c.tie_word_embeddings));
  bool residual_in_fp32 = false;
  RETURN_IF_ERROR(ReadBool(j, "residual_in_fp32", &residual_in_fp32));
  RETURN_IF_ERROR(ReadString(j, "mamba_hidden_act", false, &c.mamba_hidden_act));
  RETURN_IF_ERROR(ReadString(j, "mlp_hidden_act", false, &c.mlp_hidden_act));
  RETURN_IF_ERROR(ReadDouble(j, "time_step_min", &c.time_step_min));
  if (const Json* limit = Find(j, "time_step_limit")) {
    if (!limit->is_array() || limit->size() != 2) {
      return TypeError("time_step_limit", "a list of two numbers", *limit);
    }
    ASSIGN_OR_RETURN(c.time_step_limit_min, JsonToDouble("time_step_limit[0]", (*limit)[0]));
    ASSIGN_OR_RETURN(c.time_step_limit_max, JsonToDouble("time_step_limit[1]", (*limit)[1]));
  }
  RETURN_IF_ERROR(ReadTokenId(j, "bos_token_id", &c.bos_token_id));
  RETURN_IF_ERROR(ReadTokenId(j, "eos_token_id", &c.eos_token_id));
  RETURN_IF_ERROR(ReadTokenId(j, "pad_token_id", &c.pad_token_id));
  // transformers 5 writes "dtype", older versions "torch_dtype".
  for (const char* key : {"dtype", "torch_dtype"}) {
    std::string name;
    RETURN_IF_ERROR(ReadString(j, key, false, &name));
    if (!name.empty()) {
      ASSIGN_OR_RETURN(c.torch_dtype, ParseTorchDType(key, name));
    }
  }

  // Values.
  for (const auto& r : required) RETURN_IF_ERROR(RequirePositive(r.key, *r.field));
  RETURN_IF_ERROR(RequirePositive("conv_kernel", c.conv_kernel));
  RETURN_IF_ERROR(RequirePositive("chunk_size", c.chunk_size));
  RETURN_IF_ERROR(RequirePositive("max_position_embeddings", c.max_position_embeddings));
  if (has_head_dim || has_attention_head_dim) {
    c.head_dim = has_head_dim ? head_dim : attention_head_dim;
    RETURN_IF_ERROR(RequirePositive(has_head_dim ? "head_dim" : "attention_head_dim", c.head_dim));
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config has neither head_dim nor attention_head_dim, and hidden_size (", c.hidden_size,
          ") is not divisible by num_attention_heads (", c.num_attention_heads, ")"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (!(c.layer_norm_epsilon > 0) || !std::isfinite(c.layer_norm_epsilon)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config field layer_norm_epsilon must be a positive number, got ", c.layer_norm_epsilon));
  }
  if (!(c.time_step_min >= 0) || !std::isfinite(c.time_step_min)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config field time_step_min must be a finite number >= 0, got ", c.time_step_min));
  }
  if (!(c.time_step_limit_min >= 0) || !std::isfinite(c.time_step_limit_min) ||
      !(c.time_step_limit_max > c.time_step_limit_min)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config field time_step_limit must be [min, max] with 0 <= min < max, got [",
                     c.time_step_limit_min, ", ", c.time_step_limit_max, "]"));
  }
  c.time_step_limit_max = std::min(c.time_step_limit_max, kInfinityStandIn);

  RETURN_IF_ERROR(ParsePattern(c));
  RETURN_IF_ERROR(RequireDivisible("num_attention_heads", c.num_attention_heads,
                                   "num_key_value_heads", c.num_key_value_heads));
  RETURN_IF_ERROR(RequireDivisible("mamba_num_heads", c.mamba_num_heads, "n_groups", c.n_groups));

  // What the runtime implements: the real models' variant.
  if (c.mamba_hidden_act != "silu") {
    return absl::UnimplementedError(absl::StrCat(
        "config field mamba_hidden_act is '", c.mamba_hidden_act, "'; only 'silu' is supported"));
  }
  if (c.mlp_hidden_act != "relu2") {
    return absl::UnimplementedError(absl::StrCat("config field mlp_hidden_act is '",
                                                 c.mlp_hidden_act, "'; only 'relu2' is supported"));
  }
  RETURN_IF_ERROR(RequireFlag("use_conv_bias", c.use_conv_bias, true, "conv1d has a bias"));
  RETURN_IF_ERROR(RequireFlag("mamba_proj_bias", c.mamba_proj_bias, false, "no Mamba proj bias"));
  RETURN_IF_ERROR(RequireFlag("use_bias", use_bias, false, "no Mamba proj bias"));
  RETURN_IF_ERROR(RequireFlag("attention_bias", c.attention_bias, false, "no attention bias"));
  RETURN_IF_ERROR(RequireFlag("mlp_bias", c.mlp_bias, false, "no MLP bias"));
  RETURN_IF_ERROR(
      RequireFlag("residual_in_fp32", residual_in_fp32, false, "the residual stream is bf16"));
  return absl::OkStatus();
}

}  // namespace

int64_t ModelConfig::CountLayers(LayerKind kind) const {
  int64_t n = 0;
  for (LayerKind k : layers) n += k == kind;
  return n;
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(absl::string_view json) {
  // Bounded before parsing: printing or walking a parsed value recurses per nesting level.
  RETURN_IF_ERROR(Annotate(CheckJsonSize(json.size(), kMaxConfigBytes, "config"), "config.json"));
  RETURN_IF_ERROR(Annotate(CheckJsonDepth(json, kMaxJsonDepth), "config.json"));
  const std::string text = ReplaceNonFiniteTokens(json);
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config is not valid JSON: ", e.what()));
  }
  ModelConfig c;
  RETURN_IF_ERROR(FromJsonObject(j, c));
  return c;
}

absl::StatusOr<ModelConfig> ModelConfig::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open config file ", path));
  const auto size = static_cast<size_t>(std::max<std::streamoff>(0, in.tellg()));
  RETURN_IF_ERROR(Annotate(CheckJsonSize(size, kMaxConfigBytes, "config"), path));
  in.seekg(0);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read config file ", path));
  auto config = FromJson(buffer.str());
  if (!config.ok()) return Annotate(config.status(), path);
  return config;
}

std::string ModelConfig::ToJson() const {
  nlohmann::ordered_json j;
  j["architectures"] = {"NemotronHForCausalLM"};
  j["model_type"] = model_type;
  j["torch_dtype"] = std::string(TorchDTypeName(torch_dtype));
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["hybrid_override_pattern"] = hybrid_override_pattern;
  j["vocab_size"] = vocab_size;
  j["intermediate_size"] = intermediate_size;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["attention_head_dim"] = head_dim;
  j["mamba_num_heads"] = mamba_num_heads;
  j["mamba_head_dim"] = mamba_head_dim;
  j["ssm_state_size"] = ssm_state_size;
  j["n_groups"] = n_groups;
  if (d_inner() % hidden_size == 0) j["expand"] = d_inner() / hidden_size;
  j["conv_kernel"] = conv_kernel;
  j["chunk_size"] = chunk_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["rms_norm_eps"] = layer_norm_epsilon;
  j["use_conv_bias"] = use_conv_bias;
  j["mamba_proj_bias"] = mamba_proj_bias;
  j["use_bias"] = mamba_proj_bias;
  j["attention_bias"] = attention_bias;
  j["mlp_bias"] = mlp_bias;
  j["residual_in_fp32"] = false;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["mamba_hidden_act"] = mamba_hidden_act;
  j["mlp_hidden_act"] = mlp_hidden_act;
  j["time_step_min"] = time_step_min;
  j["time_step_max"] = 0.1;
  j["time_step_floor"] = 1e-4;
  // (0, inf) is the Hugging Face default; writing inf would need Python's non-JSON Infinity.
  if (time_step_limit_min != 0.0 || time_step_limit_max < kInfinityStandIn) {
    j["time_step_limit"] = {time_step_limit_min, time_step_limit_max};
  }
  auto token = [](int64_t id) {
    return id < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(id);
  };
  j["bos_token_id"] = token(bos_token_id);
  j["eos_token_id"] = token(eos_token_id);
  j["pad_token_id"] = token(pad_token_id);
  j["hidden_dropout"] = 0.0;
  j["attention_dropout"] = 0.0;
  j["use_cache"] = true;
  j["num_logits_to_keep"] = 1;
  return j.dump(2) + "\n";
}

std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& c) {
  const int64_t h = c.hidden_size;
  std::vector<ExpectedTensor> out;
  out.push_back({"backbone.embeddings.weight", {c.vocab_size, h}});
  for (int64_t i = 0; i < static_cast<int64_t>(c.layers.size()); ++i) {
    const std::string p = absl::StrCat("backbone.layers.", i, ".");
    out.push_back({p + "norm.weight", {h}});
    switch (c.layers[i]) {
      case LayerKind::kMamba:
        out.push_back({p + "mixer.in_proj.weight", {c.in_proj_dim(), h}});
        out.push_back({p + "mixer.conv1d.weight", {c.conv_dim(), 1, c.conv_kernel}});
        out.push_back({p + "mixer.conv1d.bias", {c.conv_dim()}});
        out.push_back({p + "mixer.A_log", {c.mamba_num_heads}});
        out.push_back({p + "mixer.D", {c.mamba_num_heads}});
        out.push_back({p + "mixer.dt_bias", {c.mamba_num_heads}});
        out.push_back({p + "mixer.norm.weight", {c.d_inner()}});
        out.push_back({p + "mixer.out_proj.weight", {h, c.d_inner()}});
        break;
      case LayerKind::kAttention:
        out.push_back({p + "mixer.q_proj.weight", {c.q_dim(), h}});
        out.push_back({p + "mixer.k_proj.weight", {c.kv_dim(), h}});
        out.push_back({p + "mixer.v_proj.weight", {c.kv_dim(), h}});
        out.push_back({p + "mixer.o_proj.weight", {h, c.q_dim()}});
        break;
      case LayerKind::kMlp:
        out.push_back({p + "mixer.up_proj.weight", {c.intermediate_size, h}});
        out.push_back({p + "mixer.down_proj.weight", {h, c.intermediate_size}});
        break;
    }
  }
  out.push_back({"backbone.norm_f.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}});
  return out;
}

absl::StatusOr<std::string> EmbeddingName(const Checkpoint& checkpoint) {
  constexpr absl::string_view kPlural = "backbone.embeddings.weight";
  constexpr absl::string_view kSingular = "backbone.embedding.weight";
  const bool plural = checkpoint.Has(kPlural);
  const bool singular = checkpoint.Has(kSingular);
  if (plural && singular) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint holds both ", kPlural, " and ", kSingular));
  }
  if (plural) return std::string(kPlural);
  if (singular) return std::string(kSingular);
  return absl::NotFoundError(
      absl::StrCat("checkpoint has no embedding (", kPlural, " or ", kSingular, ")"));
}

absl::Status ValidateCheckpoint(const ModelConfig& config, const Checkpoint& checkpoint) {
  ASSIGN_OR_RETURN(const std::string embedding, EmbeddingName(checkpoint));
  std::set<std::string> expected_names;
  for (const ExpectedTensor& expected : ExpectedTensors(config)) {
    const std::string name =
        expected.name == "backbone.embeddings.weight" ? embedding : expected.name;
    expected_names.insert(name);
    if (!checkpoint.Has(name)) {
      return absl::NotFoundError(absl::StrCat("checkpoint is missing tensor ", name, " (shape ",
                                              ShapeToString(expected.shape), ")"));
    }
    ASSIGN_OR_RETURN(const TensorInfo info, checkpoint.Info(name));
    const std::string file = checkpoint.FileOf(name).value_or("?");
    if (info.shape != expected.shape) {
      return absl::InvalidArgumentError(absl::StrCat(file, " tensor ", name, ": expected shape ",
                                                     ShapeToString(expected.shape), ", found ",
                                                     ShapeToString(info.shape)));
    }
    if (!IsFloating(info.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, " tensor ", name, ": expected a floating dtype, found ", DTypeName(info.dtype)));
    }
    // bf16 and f16 have the same size: a tensor stored in the other 2-byte format than the config
    // declares is a mislabelled or mixed checkpoint, refused rather than guessed. (A wider float,
    // e.g. f32 A_log in a bf16 checkpoint, is unambiguous and converted exactly.)
    if (info.dtype != config.torch_dtype &&
        DTypeSize(info.dtype) == DTypeSize(config.torch_dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, " tensor ", name, ": stored as ", DTypeName(info.dtype),
          " but config.json declares torch_dtype ", TorchDTypeName(config.torch_dtype), " (",
          DTypeName(config.torch_dtype), "); refusing a checkpoint that mixes bf16 and f16"));
    }
  }
  for (const std::string& name : checkpoint.Names()) {
    if (expected_names.count(name) || absl::StartsWith(name, "mtp.")) continue;
    return absl::InvalidArgumentError(
        absl::StrCat(checkpoint.FileOf(name).value_or("?"), " holds tensor ", name, ", which a ",
                     config.hybrid_override_pattern.size(), "-layer nemotron_h model with pattern ",
                     config.hybrid_override_pattern, " does not have"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::core
