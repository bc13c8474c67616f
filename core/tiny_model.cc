#include "core/tiny_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "nlohmann/json.hpp"

namespace tandem::core {
namespace {

namespace fs = std::filesystem;

struct Preset {
  const char* name;
  int64_t hidden, ffn, attention_heads, kv_heads, head_dim, mamba_heads, mamba_head_dim, state,
      groups, chunk, max_positions;
  const char* pattern;
};

constexpr Preset kPresets[] = {
    {"tiny", 64, 128, 8, 4, 16, 8, 8, 16, 4, 16, 1024, "M-M*-MM-M*-"},
    {"tiny-7", 96, 192, 12, 2, 8, 12, 8, 32, 2, 16, 1024, "M-M*-M-"},
    {"bench-512", 512, 2048, 8, 4, 64, 16, 64, 64, 8, 64, 4096, "M-M-M*-M-M-M*-M-"},
};

// Seeds one tensor's generator from the model seed and the tensor's name, so every tensor's
// values are independent of the order (and the shard) it is written in.
uint64_t TensorSeed(uint64_t seed, absl::string_view name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (h | 1);  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class Sampler {
 public:
  explicit Sampler(uint64_t seed) : engine_(seed) {}
  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Standard normal by Box-Muller (std::normal_distribution differs between libraries).
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * M_PI * u2);
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The value of one element of tensor `name` (the tensor's kind is known by its name suffix).
double SampleElement(absl::string_view name, const Shape& shape, const ModelConfig& c, Sampler& s) {
  if (absl::EndsWith(name, ".A_log")) return std::log(s.Uniform(1.0, 16.0));
  if (absl::EndsWith(name, ".dt_bias")) {
    const double dt = std::max(std::exp(s.Uniform(std::log(0.001), std::log(0.1))), 1e-4);
    return dt + std::log(-std::expm1(-dt));  // inverse softplus
  }
  if (absl::EndsWith(name, ".D")) return 1.0 + 0.1 * s.Normal();
  if (absl::EndsWith(name, "norm.weight") || absl::EndsWith(name, "norm_f.weight")) {
    return 1.0 + 0.05 * s.Normal();
  }
  if (absl::StrContains(name, ".conv1d.")) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(c.conv_kernel));
    return s.Uniform(-bound, bound);
  }
  if (absl::StrContains(name, "embedding")) return s.Normal();
  // nn.Linear weights [out, in]: fan_in is the last dimension.
  return s.Normal() / std::sqrt(static_cast<double>(shape.back()));
}

absl::Status RemoveOldCheckpointFiles(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    const bool shard = absl::StartsWith(file, "model-") && absl::EndsWith(file, ".safetensors");
    if (file == "model.safetensors" || file == "model.safetensors.index.json" || shard) {
      fs::remove(entry.path(), ec);
      if (ec)
        return absl::InternalError(
            absl::StrCat("remove ", entry.path().string(), ": ", ec.message()));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("list ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

// 1 + the largest token id of a Hugging Face tokenizer.json (model.vocab and added_tokens).
absl::StatusOr<int64_t> TokenizerIdCount(const std::string& path) {
  if (!fs::is_regular_file(path)) {
    return absl::NotFoundError(absl::StrCat("tokenizer file ", path, " does not exist"));
  }
  std::ifstream in(path, std::ios::binary);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer file ", path, " is not a JSON object"));
  }
  int64_t count = 0;
  auto note = [&](const nlohmann::json& id) {
    if (id.is_number_integer()) count = std::max(count, id.get<int64_t>() + 1);
  };
  if (auto model = j.find("model"); model != j.end() && model->is_object()) {
    if (auto vocab = model->find("vocab"); vocab != model->end() && vocab->is_object()) {
      for (const auto& item : vocab->items()) note(item.value());
    }
  }
  if (auto added = j.find("added_tokens"); added != j.end() && added->is_array()) {
    for (const auto& token : *added) {
      if (token.is_object() && token.contains("id")) note(token["id"]);
    }
  }
  return count;
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> TinyPresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.push_back(p.name);
  return names;
}

absl::StatusOr<ModelConfig> TinyPreset(absl::string_view name) {
  for (const Preset& p : kPresets) {
    if (name != p.name) continue;
    ModelConfig c;
    c.hidden_size = p.hidden;
    c.hybrid_override_pattern = p.pattern;
    c.num_hidden_layers = static_cast<int64_t>(c.hybrid_override_pattern.size());
    c.vocab_size = 4096;
    c.intermediate_size = p.ffn;
    c.num_attention_heads = p.attention_heads;
    c.num_key_value_heads = p.kv_heads;
    c.head_dim = p.head_dim;
    c.mamba_num_heads = p.mamba_heads;
    c.mamba_head_dim = p.mamba_head_dim;
    c.ssm_state_size = p.state;
    c.n_groups = p.groups;
    c.conv_kernel = 4;
    c.chunk_size = p.chunk;
    c.max_position_embeddings = p.max_positions;
    c.time_step_min = 0.0;
    // Through the parser: validates the preset and fills the layer list.
    return ModelConfig::FromJson(c.ToJson());
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown tiny model preset '", name, "'; presets: ", absl::StrJoin(TinyPresetNames(), ", ")));
}

absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> GenerateWeights(
    const ModelConfig& config, uint64_t seed, DType dtype) {
  if (!IsFloating(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights need a floating dtype, got ", DTypeName(dtype)));
  }
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<float> values;
  for (const ExpectedTensor& t : ExpectedTensors(config)) {
    Sampler sampler(TensorSeed(seed, t.name));
    values.resize(static_cast<size_t>(NumElements(t.shape)));
    for (float& v : values) v = static_cast<float>(SampleElement(t.name, t.shape, config, sampler));
    Tensor tensor = Tensor::Empty(dtype, t.shape);
    ConvertFromF32(values.data(), dtype, tensor.raw(), values.size());
    tensors.emplace_back(t.name, std::move(tensor));
  }
  return tensors;
}

absl::Status WriteTinyModel(const TinyModelOptions& options, const std::string& dir) {
  ASSIGN_OR_RETURN(ModelConfig config, TinyPreset(options.preset));
  if (options.dtype != DType::kBF16 && options.dtype != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat("tiny model dtype must be bf16 or f32, got ", DTypeName(options.dtype)));
  }
  if (options.vocab_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size must be positive, got ", options.vocab_size));
  }
  if (options.vocab_size > 0) config.vocab_size = options.vocab_size;
  if (!options.tokenizer_json.empty()) {
    ASSIGN_OR_RETURN(const int64_t tokens, TokenizerIdCount(options.tokenizer_json));
    if (options.vocab_size == 0) {
      // Room for every token id, a multiple of 64 so that TP 1, 2, 4 still divide it.
      config.vocab_size = std::max(config.vocab_size, (tokens + 63) / 64 * 64);
    } else if (tokens > options.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("vocab_size ", options.vocab_size,
                                                     " is smaller than the ", tokens,
                                                     " token ids of ", options.tokenizer_json));
    }
  }
  config.torch_dtype = options.dtype;
  const int64_t num_tensors = static_cast<int64_t>(ExpectedTensors(config).size());
  if (options.num_shards < 1 || options.num_shards > num_tensors) {
    return absl::InvalidArgumentError(absl::StrCat("shards must be in [1, ", num_tensors,
                                                   "] for preset ", options.preset, ", got ",
                                                   options.num_shards));
  }
  ASSIGN_OR_RETURN(auto tensors, GenerateWeights(config, options.seed, options.dtype));

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create directory ", dir, ": ", ec.message()));
  RETURN_IF_ERROR(RemoveOldCheckpointFiles(dir));
  RETURN_IF_ERROR(WriteCheckpoint(dir, tensors, options.num_shards));
  RETURN_IF_ERROR(WriteTextFile((fs::path(dir) / "config.json").string(), config.ToJson()));
  if (!options.tokenizer_json.empty()) {
    fs::copy_file(options.tokenizer_json, fs::path(dir) / "tokenizer.json",
                  fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("copy ", options.tokenizer_json, " to ", dir, ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::core
