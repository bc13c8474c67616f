#include "core/model_config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem::core {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string ConfigPath(const std::string& name) {
  return std::string(TANDEM_SOURCE_DIR) + "/configs/" + name + "/config.json";
}

Json Config8B() { return Json::parse(ReadText(ConfigPath("nemotron-h-8b"))); }

// Parses `j` and expects an error of `code` whose message contains `needle`.
void ExpectError(const Json& j, absl::StatusCode code, const std::string& needle) {
  auto config = ModelConfig::FromJson(j.dump());
  ASSERT_FALSE(config.ok()) << "accepted: " << j.dump();
  EXPECT_EQ(config.status().code(), code) << config.status();
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(needle));
}

void ExpectInvalid(const Json& j, const std::string& needle) {
  ExpectError(j, absl::StatusCode::kInvalidArgument, needle);
}

int64_t TotalElements(const ModelConfig& c) {
  int64_t total = 0;
  for (const auto& t : ExpectedTensors(c)) total += NumElements(t.shape);
  return total;
}

struct RealModel {
  std::string dir;
  int64_t parameters, mamba, attention, mlp, hidden, ffn;
};

class RealConfigTest : public ::testing::TestWithParam<RealModel> {};

TEST_P(RealConfigTest, LoadsWithSpecValues) {
  const RealModel& m = GetParam();
  auto config = ModelConfig::FromFile(ConfigPath(m.dir));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->hidden_size, m.hidden);
  EXPECT_EQ(config->intermediate_size, m.ffn);
  EXPECT_EQ(config->num_hidden_layers, m.mamba + m.attention + m.mlp);
  EXPECT_EQ(config->CountLayers(LayerKind::kMamba), m.mamba);
  EXPECT_EQ(config->CountLayers(LayerKind::kAttention), m.attention);
  EXPECT_EQ(config->CountLayers(LayerKind::kMlp), m.mlp);
  EXPECT_EQ(config->head_dim, 128);  // from attention_head_dim
  EXPECT_EQ(config->num_key_value_heads, 8);
  EXPECT_EQ(config->n_groups, 8);
  EXPECT_EQ(config->mamba_head_dim, 64);
  EXPECT_EQ(config->vocab_size, 131072);
  EXPECT_EQ(config->torch_dtype, DType::kBF16);
  EXPECT_EQ(config->layers.front(), LayerKind::kMamba);
  EXPECT_EQ(config->layers.back(), LayerKind::kMlp);
  EXPECT_EQ(TotalElements(*config), m.parameters);
}

TEST_P(RealConfigTest, RoundTripsThroughToJson) {
  auto config = ModelConfig::FromFile(ConfigPath(GetParam().dir));
  ASSERT_TRUE(config.ok()) << config.status();
  auto again = ModelConfig::FromJson(config->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *config);
  EXPECT_EQ(again->ToJson(), config->ToJson());
}

INSTANTIATE_TEST_SUITE_P(
    Shipped, RealConfigTest,
    ::testing::Values(RealModel{"nemotron-h-8b", 8100852736, 24, 4, 24, 4096, 21504},
                      RealModel{"nemotron-h-47b", 46791554816, 45, 5, 48, 8192, 30720},
                      RealModel{"nemotron-h-56b", 56324350464, 54, 10, 54, 8192, 32768}));

TEST(ModelConfigTest, DerivedDimensionsOf8B) {
  auto c = ModelConfig::FromJson(Config8B().dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_inner(), 8192);
  EXPECT_EQ(c->conv_dim(), 10240);
  EXPECT_EQ(c->in_proj_dim(), 18560);
  EXPECT_EQ(c->q_dim(), 4096);
  EXPECT_EQ(c->kv_dim(), 1024);
  EXPECT_EQ(c->hybrid_override_pattern.size(), 52u);
  for (int i : {7, 18, 29, 40}) EXPECT_EQ(c->layers[i], LayerKind::kAttention) << i;
}

TEST(ExpectedTensorsTest, MatchSpecTableFor8B) {
  auto c = ModelConfig::FromJson(Config8B().dump());
  ASSERT_TRUE(c.ok()) << c.status();
  const auto tensors = ExpectedTensors(*c);
  // embedding + 52 pre-norms + 24 Mamba x 8 + 4 attention x 4 + 24 MLP x 2 + norm_f + lm_head
  EXPECT_EQ(tensors.size(), 1u + 52 + 24 * 8 + 4 * 4 + 24 * 2 + 2);
  std::map<std::string, Shape> shapes;
  for (const auto& t : tensors) shapes[t.name] = t.shape;
  EXPECT_EQ(shapes.size(), tensors.size()) << "duplicate names";
  EXPECT_EQ(tensors.front().name, "backbone.embeddings.weight");
  EXPECT_EQ(tensors.back().name, "lm_head.weight");
  const std::map<std::string, Shape> spec = {
      {"backbone.embeddings.weight", {131072, 4096}},
      {"backbone.layers.0.norm.weight", {4096}},
      {"backbone.layers.0.mixer.in_proj.weight", {18560, 4096}},
      {"backbone.layers.0.mixer.conv1d.weight", {10240, 1, 4}},
      {"backbone.layers.0.mixer.conv1d.bias", {10240}},
      {"backbone.layers.0.mixer.A_log", {128}},
      {"backbone.layers.0.mixer.D", {128}},
      {"backbone.layers.0.mixer.dt_bias", {128}},
      {"backbone.layers.0.mixer.norm.weight", {8192}},
      {"backbone.layers.0.mixer.out_proj.weight", {4096, 8192}},
      {"backbone.layers.7.mixer.q_proj.weight", {4096, 4096}},
      {"backbone.layers.7.mixer.k_proj.weight", {1024, 4096}},
      {"backbone.layers.7.mixer.v_proj.weight", {1024, 4096}},
      {"backbone.layers.7.mixer.o_proj.weight", {4096, 4096}},
      {"backbone.layers.1.mixer.up_proj.weight", {21504, 4096}},
      {"backbone.layers.1.mixer.down_proj.weight", {4096, 21504}},
      {"backbone.layers.51.mixer.down_proj.weight", {4096, 21504}},
      {"backbone.norm_f.weight", {4096}},
      {"lm_head.weight", {131072, 4096}},
  };
  for (const auto& [name, shape] : spec) {
    ASSERT_TRUE(shapes.count(name)) << name;
    EXPECT_EQ(shapes[name], shape) << name;
  }
  // Layer type decides the tensors: no attention tensors on a Mamba layer.
  EXPECT_FALSE(shapes.count("backbone.layers.0.mixer.q_proj.weight"));
  EXPECT_FALSE(shapes.count("backbone.layers.7.mixer.in_proj.weight"));
}

TEST(ExpectedTensorsTest, TiedEmbeddingsHaveNoLmHead) {
  Json j = Config8B();
  j["tie_word_embeddings"] = true;
  auto c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(ExpectedTensors(*c).back().name, "backbone.norm_f.weight");
}

TEST(ModelConfigValidationTest, PatternLengthMustEqualLayerCount) {
  Json j = Config8B();
  j["num_hidden_layers"] = 51;
  ExpectInvalid(j, "hybrid_override_pattern has 52 layers but num_hidden_layers is 51");
  j = Config8B();
  j["hybrid_override_pattern"] = j["hybrid_override_pattern"].get<std::string>() + "M";
  ExpectInvalid(j, "hybrid_override_pattern has 53 layers but num_hidden_layers is 52");
}

TEST(ModelConfigValidationTest, PatternCharacters) {
  Json j = Config8B();
  std::string pattern = j["hybrid_override_pattern"];
  pattern[5] = 'X';
  j["hybrid_override_pattern"] = pattern;
  ExpectInvalid(j, "layer 5 is 'X', expected one of 'M' (Mamba-2), '*' (attention), '-' (MLP)");
  pattern[5] = ' ';
  j["hybrid_override_pattern"] = pattern;
  ExpectInvalid(j, "layer 5 is ' '");
}

TEST(ModelConfigValidationTest, MoELayersAreNotSupportedYet) {
  Json j = Config8B();
  std::string pattern = j["hybrid_override_pattern"];
  pattern[3] = 'E';
  j["hybrid_override_pattern"] = pattern;
  ExpectError(j, absl::StatusCode::kUnimplemented,
              "layer 3 is 'E': MoE layers ('E') are not supported yet");
}

TEST(ModelConfigValidationTest, HeadsDivisibleByKvHeads) {
  Json j = Config8B();
  j["num_attention_heads"] = 30;
  ExpectInvalid(j, "num_attention_heads (30) must be divisible by num_key_value_heads (8)");
}

TEST(ModelConfigValidationTest, MambaHeadsDivisibleByGroups) {
  Json j = Config8B();
  j["n_groups"] = 6;
  ExpectInvalid(j, "mamba_num_heads (128) must be divisible by n_groups (6)");
}

TEST(ModelConfigValidationTest, RequiredFieldsMissing) {
  for (const char* key :
       {"model_type", "hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size",
        "num_attention_heads", "num_key_value_heads", "mamba_num_heads", "mamba_head_dim",
        "ssm_state_size", "n_groups", "hybrid_override_pattern"}) {
    SCOPED_TRACE(key);
    Json j = Config8B();
    j.erase(key);
    ExpectInvalid(j, std::string("config field ") + key + " is required but missing");
    j = Config8B();
    j[key] = nullptr;  // null counts as missing
    ExpectInvalid(j, std::string("config field ") + key + " is required but missing");
  }
}

TEST(ModelConfigValidationTest, NonPositiveSizes) {
  for (const char* key : {"hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size",
                          "num_attention_heads", "num_key_value_heads", "mamba_num_heads",
                          "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel",
                          "chunk_size", "max_position_embeddings", "attention_head_dim"}) {
    for (int value : {0, -3}) {
      SCOPED_TRACE(std::string(key) + "=" + std::to_string(value));
      Json j = Config8B();
      j[key] = value;
      ExpectInvalid(j, std::string("config field ") + key + " must be positive, got " +
                           std::to_string(value));
    }
  }
  Json j = Config8B();
  j["layer_norm_epsilon"] = 0.0;
  ExpectInvalid(j, "layer_norm_epsilon must be a positive number, got 0");
  j["layer_norm_epsilon"] = -1e-5;
  ExpectInvalid(j, "layer_norm_epsilon must be a positive number");
}

TEST(ModelConfigValidationTest, WrongJsonTypes) {
  struct Case {
    const char* key;
    Json value;
    const char* message;
  };
  const Case cases[] = {
      {"hidden_size", "4096", "config field hidden_size: expected an integer, got string \"4096\""},
      {"hidden_size", 4096.5, "config field hidden_size: expected an integer, got number 4096.5"},
      {"vocab_size", Json::array({1}), "config field vocab_size: expected an integer, got array"},
      {"num_hidden_layers", true,
       "config field num_hidden_layers: expected an integer, got boolean"},
      {"hybrid_override_pattern", 52, "config field hybrid_override_pattern: expected a string"},
      {"model_type", Json::object(), "config field model_type: expected a string, got object"},
      {"use_conv_bias", "yes", "config field use_conv_bias: expected true or false"},
      {"tie_word_embeddings", 0, "config field tie_word_embeddings: expected true or false"},
      {"layer_norm_epsilon", "1e-5", "config field layer_norm_epsilon: expected a number"},
      {"time_step_limit", 0.5, "config field time_step_limit: expected a list of two numbers"},
      {"time_step_limit", Json::array({0.0}), "expected a list of two numbers"},
      {"time_step_limit", Json::array({0.0, "x"}), "time_step_limit[1]: expected a number"},
      {"torch_dtype", 16, "config field torch_dtype: expected a string"},
      {"head_dim", "128", "config field head_dim: expected an integer"},
      {"eos_token_id", "2", "config field eos_token_id: expected an integer"},
      {"eos_token_id", Json::array(), "eos_token_id: expected a token id or a non-empty list"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    Json j = Config8B();
    j[c.key] = c.value;
    ExpectInvalid(j, c.message);
  }
  ExpectInvalid(Json::array({1, 2}), "expected a JSON object, got array");
}

TEST(ModelConfigValidationTest, ModelTypeMustBeNemotronH) {
  Json j = Config8B();
  j["model_type"] = "mamba2";
  ExpectInvalid(j, "config field model_type is 'mamba2', expected 'nemotron_h'");
}

TEST(ModelConfigValidationTest, MalformedJson) {
  auto c = ModelConfig::FromJson("{\"hidden_size\": 4096,");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("config is not valid JSON"));
  EXPECT_FALSE(ModelConfig::FromJson("").ok());
  EXPECT_FALSE(ModelConfig::FromJson("\"unterminated").ok());
}

TEST(ModelConfigValidationTest, UnsupportedVariants) {
  const std::pair<const char*, Json> cases[] = {
      {"mamba_hidden_act", "gelu"}, {"mlp_hidden_act", "silu"}, {"use_conv_bias", false},
      {"mamba_proj_bias", true},    {"use_bias", true},         {"attention_bias", true},
      {"mlp_bias", true},           {"residual_in_fp32", true},
  };
  for (const auto& [key, value] : cases) {
    SCOPED_TRACE(key);
    Json j = Config8B();
    j[key] = value;
    ExpectError(j, absl::StatusCode::kUnimplemented, std::string("config field ") + key);
  }
}

TEST(ModelConfigTest, AcceptsHeadDimOrAttentionHeadDim) {
  Json j = Config8B();
  j.erase("attention_head_dim");
  j["head_dim"] = 64;
  auto c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->q_dim(), 32 * 64);

  j["attention_head_dim"] = 64;  // both, agreeing
  c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 64);

  j["attention_head_dim"] = 128;  // both, disagreeing
  ExpectInvalid(j, "head_dim (64) and attention_head_dim (128) disagree");

  j.erase("attention_head_dim");
  j.erase("head_dim");  // neither: hidden_size / num_attention_heads
  c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 4096 / 32);

  j["num_attention_heads"] = 24;
  j["num_key_value_heads"] = 8;
  ExpectInvalid(j, "hidden_size (4096) is not divisible by num_attention_heads (24)");
}

TEST(ModelConfigTest, AcceptsTransformers5LayersBlockType) {
  const Json base = Config8B();
  const std::string pattern = base["hybrid_override_pattern"];
  Json list = Json::array();
  for (char ch : pattern) {
    list.push_back(ch == 'M' ? "linear_attention" : ch == '*' ? "full_attention" : "mlp");
  }
  Json j = base;
  j.erase("hybrid_override_pattern");
  j.erase("num_hidden_layers");  // derived from the list
  j["layers_block_type"] = list;
  auto c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hybrid_override_pattern, pattern);
  EXPECT_EQ(c->num_hidden_layers, 52);
  EXPECT_EQ(*c, *ModelConfig::FromJson(base.dump()));

  j["layers_block_type"][0] = "mamba";  // legacy spelling
  j["layers_block_type"][7] = "attention";
  EXPECT_TRUE(ModelConfig::FromJson(j.dump()).ok());
  j["hybrid_override_pattern"] = pattern;  // both, agreeing
  EXPECT_TRUE(ModelConfig::FromJson(j.dump()).ok());
  j["layers_block_type"][1] = "mamba";  // both, disagreeing
  ExpectInvalid(j, "hybrid_override_pattern (M-M-M-M*-");
  j.erase("hybrid_override_pattern");
  j["layers_block_type"][1] = "conv";
  ExpectInvalid(j, "config field layers_block_type[1]: expected one of mamba, linear_attention");
  j["layers_block_type"][1] = "moe";
  ExpectError(j, absl::StatusCode::kUnimplemented, "MoE layers ('E') are not supported yet");
  j["layers_block_type"] = "M-M";
  ExpectInvalid(j, "config field layers_block_type: expected a list of layer types");
}

TEST(ModelConfigTest, TorchDType) {
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, DType>>{
           {"bfloat16", DType::kBF16}, {"float32", DType::kF32}, {"float16", DType::kF16}}) {
    Json j = Config8B();
    j["torch_dtype"] = name;
    auto c = ModelConfig::FromJson(j.dump());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->torch_dtype, dtype) << name;
    auto again = ModelConfig::FromJson(c->ToJson());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->torch_dtype, dtype);
  }
  Json j = Config8B();
  j.erase("torch_dtype");
  j["dtype"] = "float32";  // transformers 5 spelling
  auto c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->torch_dtype, DType::kF32);
  j["dtype"] = "int8";
  ExpectInvalid(j, "config field dtype: 'int8' is not one of bfloat16, float16, float32");
}

TEST(ModelConfigTest, PythonInfinityInTimeStepLimit) {
  std::string text = Config8B().dump();
  text.insert(1, "\"time_step_limit\": [0.0, Infinity], \"note\": \"Infinity NaN -Infinity\", ");
  auto c = ModelConfig::FromJson(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->time_step_limit_min, 0.0);
  EXPECT_GE(c->time_step_limit_max, 1e30);

  text = Config8B().dump();
  text.insert(1, "\"time_step_limit\" : [ 0.25 , 8.5 ] ,");
  c = ModelConfig::FromJson(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->time_step_limit_min, 0.25);
  EXPECT_EQ(c->time_step_limit_max, 8.5);
  auto again = ModelConfig::FromJson(c->ToJson());  // a finite limit is written back
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *c);

  for (const char* bad : {"[0.0, NaN]", "[-Infinity, 1.0]", "[1.0, 0.5]"}) {
    text = Config8B().dump();
    text.insert(1, std::string("\"time_step_limit\": ") + bad + ", ");
    c = ModelConfig::FromJson(text);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_THAT(std::string(c.status().message()),
                HasSubstr("time_step_limit must be [min, max] with 0 <= min < max"));
  }
  text = Config8B().dump();
  const std::string hidden = "\"hidden_size\":4096";
  ASSERT_NE(text.find(hidden), std::string::npos);
  text.replace(text.find(hidden), hidden.size(), "\"hidden_size\":Infinity");
  c = ModelConfig::FromJson(text);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("hidden_size: expected an integer"));
  text = Config8B().dump();
  text.insert(1, "\"layer_norm_epsilon_x\": Infinityy, ");  // not a token: bad JSON
  EXPECT_FALSE(ModelConfig::FromJson(text).ok());
}

TEST(ModelConfigTest, TokenIds) {
  Json j = Config8B();
  j["pad_token_id"] = nullptr;
  j["eos_token_id"] = Json::array({2, 11});
  auto c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pad_token_id, -1);
  EXPECT_EQ(c->eos_token_id, 2);
  EXPECT_EQ(c->bos_token_id, 1);
  auto again = ModelConfig::FromJson(c->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *c);
}

TEST(ModelConfigTest, FromFileNamesThePath) {
  auto missing = ModelConfig::FromFile("/nonexistent/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/config.json"));

  const std::string path =
      ::testing::TempDir() + "/bad_config_" + std::to_string(getpid()) + ".json";
  Json j = Config8B();
  j["n_groups"] = 3;
  std::ofstream(path) << j.dump();
  auto bad = ModelConfig::FromFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(path + ": mamba_num_heads (128)"));
  std::remove(path.c_str());
}

TEST(ModelConfigTest, MutatedConfigsNeverCrash) {
  // Random byte edits of a real config: every result is either a config that passes its own
  // validation again after a round trip, or an error.
  const std::string original = ReadText(ConfigPath("nemotron-h-8b"));
  const std::string alphabet = "{}[]\",:0123456789-+.eEMINaf*tn \\";
  std::mt19937 rng(2024);
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text = original;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          text.erase(pos, 1 + rng() % 8);
          break;
        default:
          text.insert(pos, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    auto c = ModelConfig::FromJson(text);
    if (!c.ok()) continue;
    ++accepted;
    auto again = ModelConfig::FromJson(c->ToJson());
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
    EXPECT_EQ(*again, *c);
  }
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace tandem::core

// Hostile config.json: nesting 10^5 deep, huge arrays, wrong types. Clean errors, no crash.
namespace tandem::core {
namespace {

std::string ConfigError(const std::string& text) {
  auto c = ModelConfig::FromJson(text);
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(ModelConfigLimitsTest, DeepNestingHugeArraysAndWrongTypesFailCleanly) {
  const std::string base = Config8B().dump();
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  // Deep values where a number is expected (the type error would print them) and at the root.
  std::string text = base;
  text.insert(1, "\"hidden_size_extra\": " + deep + ",");
  EXPECT_THAT(ConfigError(text), HasSubstr("config.json: JSON nesting exceeds the limit of 128"));
  Json j = Config8B();
  j["hidden_size"] = "PLACEHOLDER";
  text = j.dump();
  text.replace(text.find("\"PLACEHOLDER\""), 13, deep);
  EXPECT_THAT(ConfigError(text), HasSubstr("limit of 128 levels"));
  EXPECT_THAT(ConfigError(std::string(100000, '{')), HasSubstr("limit of 128 levels"));
  // Huge arrays: a 10^6-entry layer list and pattern.
  j = Config8B();
  j["layers_block_type"] = Json::array();
  for (int i = 0; i < 1000000; ++i) j["layers_block_type"].push_back("mamba");
  EXPECT_FALSE(ModelConfig::FromJson(j.dump()).ok());
  j = Config8B();
  j["hybrid_override_pattern"] = std::string(1000000, 'M');
  EXPECT_THAT(ConfigError(j.dump()), HasSubstr("hybrid_override_pattern has 1000000 layers"));
  // Wrong types.
  j = Config8B();
  j["num_hidden_layers"] = Json::parse("[[[[52]]]]");
  EXPECT_THAT(ConfigError(j.dump()), HasSubstr("num_hidden_layers"));
  j = Config8B();
  j["hybrid_override_pattern"] = Json::parse("{\"a\": [1, 2]}");
  EXPECT_THAT(ConfigError(j.dump()), HasSubstr("hybrid_override_pattern"));
  // Size bound.
  EXPECT_THAT(ConfigError(std::string(17 << 20, ' ')),
              HasSubstr("over the limit of 16777216 bytes"));
}

}  // namespace
}  // namespace tandem::core
