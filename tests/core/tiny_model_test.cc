#include "core/tiny_model.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/model_config.h"
#include "core/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::core {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Directories the tests created; removed when the test program ends.
std::vector<fs::path>& CreatedDirs() {
  static auto* dirs = new std::vector<fs::path>();
  return *dirs;
}

class RemoveCreatedDirs : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const fs::path& dir : CreatedDirs()) fs::remove_all(dir);
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveCreatedDirs =
    ::testing::AddGlobalTestEnvironment(new RemoveCreatedDirs);

std::string FreshDir(const std::string& name) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("tiny_model_test_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(dir);
  CreatedDirs().push_back(dir);
  return dir.string();
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TensorBytes(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw()), t.nbytes());
}

Checkpoint OpenOrDie(const std::string& dir) {
  auto checkpoint = Checkpoint::Open(dir);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  return std::move(checkpoint).value();
}

std::vector<float> Values(const Checkpoint& checkpoint, const std::string& name) {
  auto t = checkpoint.Get(name);
  EXPECT_TRUE(t.ok()) << t.status();
  const Tensor f = t->ToF32();
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

void MeanStd(const std::vector<float>& v, double* mean, double* stddev) {
  double sum = 0, sq = 0;
  for (float x : v) sum += x;
  *mean = sum / v.size();
  for (float x : v) sq += (x - *mean) * (x - *mean);
  *stddev = std::sqrt(sq / v.size());
}

TEST(TinyPresetTest, DefaultAllowsTp124AndUnevenPipelines) {
  auto c = TinyPreset(kDefaultTinyPreset);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_hidden_layers, 11);
  EXPECT_NE(c->num_hidden_layers % 2, 0);
  EXPECT_NE(c->num_hidden_layers % 3, 0);
  for (int64_t tp : {1, 2, 4}) {
    for (int64_t dim : {c->n_groups, c->num_key_value_heads, c->mamba_num_heads,
                        c->num_attention_heads, c->intermediate_size, c->vocab_size}) {
      EXPECT_EQ(dim % tp, 0) << "tp " << tp << " dim " << dim;
    }
  }
  EXPECT_EQ(c->CountLayers(LayerKind::kMamba), 5);
  EXPECT_EQ(c->CountLayers(LayerKind::kAttention), 2);
  EXPECT_EQ(c->CountLayers(LayerKind::kMlp), 4);
  EXPECT_EQ(c->time_step_min, 0.0);
  EXPECT_NE(c->q_dim(), c->hidden_size);  // o_proj is not square: catches transposes
}

TEST(TinyPresetTest, SecondPresetHasOtherHeadAndGroupCounts) {
  auto c = TinyPreset("tiny-7");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_hidden_layers, 7);
  EXPECT_EQ(c->n_groups, 2);
  EXPECT_EQ(c->CountLayers(LayerKind::kAttention), 1);
  EXPECT_EQ(c->num_attention_heads / c->num_key_value_heads, 6);
}

TEST(TinyPresetTest, BenchPresetIsLargeWithEveryLayerKindAndLongContext) {
  auto c = TinyPreset("bench-512");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 512);
  EXPECT_EQ(c->num_hidden_layers, 16);
  EXPECT_EQ(c->CountLayers(LayerKind::kMamba), 7);
  EXPECT_EQ(c->CountLayers(LayerKind::kAttention), 2);
  EXPECT_EQ(c->CountLayers(LayerKind::kMlp), 7);
  // The prefix-cache benchmark sends 1,056-token prompts.
  EXPECT_GE(c->max_position_embeddings, 2048);
  for (int64_t tp : {1, 2, 4}) {
    for (int64_t dim : {c->n_groups, c->num_key_value_heads, c->mamba_num_heads,
                        c->num_attention_heads, c->intermediate_size, c->vocab_size}) {
      EXPECT_EQ(dim % tp, 0) << "tp " << tp << " dim " << dim;
    }
  }
}

TEST(TinyPresetTest, UnknownPresetListsTheKnownOnes) {
  auto c = TinyPreset("huge");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("unknown tiny model preset 'huge'; presets: tiny, tiny-7, bench-512"));
}

TEST(TinyModelTest, WritesAValidHuggingFaceDirectory) {
  for (const std::string& preset : TinyPresetNames()) {
    SCOPED_TRACE(preset);
    const std::string dir = FreshDir("valid_" + preset);
    TinyModelOptions options;
    options.preset = preset;
    ASSERT_TRUE(WriteTinyModel(options, dir).ok());
    auto config = ModelConfig::FromFile(dir + "/config.json");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(*config, *TinyPreset(preset));
    EXPECT_THAT(ReadBytes(dir + "/config.json"), HasSubstr("\"time_step_min\": 0.0"));
    const Checkpoint checkpoint = OpenOrDie(dir);
    const absl::Status valid = ValidateCheckpoint(*config, checkpoint);
    EXPECT_TRUE(valid.ok()) << valid;
    EXPECT_EQ(checkpoint.Names().size(), ExpectedTensors(*config).size());
    auto info = checkpoint.Info("lm_head.weight");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->dtype, DType::kBF16);
    EXPECT_FALSE(fs::exists(dir + "/tokenizer.json"));
  }
}

TEST(TinyModelTest, SameSeedSameBytesOtherSeedOtherValues) {
  const std::string a = FreshDir("seed_a"), b = FreshDir("seed_b"), c = FreshDir("seed_c");
  TinyModelOptions options;
  options.seed = 7;
  ASSERT_TRUE(WriteTinyModel(options, a).ok());
  ASSERT_TRUE(WriteTinyModel(options, b).ok());
  options.seed = 8;
  ASSERT_TRUE(WriteTinyModel(options, c).ok());
  const std::string bytes_a = ReadBytes(a + "/model.safetensors");
  ASSERT_GT(bytes_a.size(), 100000u);
  EXPECT_EQ(bytes_a, ReadBytes(b + "/model.safetensors"));
  EXPECT_EQ(ReadBytes(a + "/config.json"), ReadBytes(c + "/config.json"));
  const Checkpoint ca = OpenOrDie(a), cc = OpenOrDie(c);
  for (const std::string& name : ca.Names()) {
    EXPECT_NE(TensorBytes(*ca.Get(name)), TensorBytes(*cc.Get(name))) << name;
  }
}

TEST(TinyModelTest, ShardedEqualsUnsharded) {
  const std::string one = FreshDir("one"), three = FreshDir("three");
  TinyModelOptions options;
  options.seed = 3;
  ASSERT_TRUE(WriteTinyModel(options, one).ok());
  options.num_shards = 3;
  ASSERT_TRUE(WriteTinyModel(options, three).ok());
  EXPECT_TRUE(fs::exists(three + "/model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(three + "/model-00003-of-00003.safetensors"));
  EXPECT_FALSE(fs::exists(three + "/model.safetensors"));
  const Checkpoint c1 = OpenOrDie(one), c3 = OpenOrDie(three);
  ASSERT_EQ(c1.Names(), c3.Names());
  for (const std::string& name : c1.Names()) {
    EXPECT_EQ(TensorBytes(*c1.Get(name)), TensorBytes(*c3.Get(name))) << name;
  }
  auto config = ModelConfig::FromFile(three + "/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(ValidateCheckpoint(*config, c3).ok());

  // Re-writing the directory with one shard removes the old shards and index.
  options.num_shards = 1;
  ASSERT_TRUE(WriteTinyModel(options, three).ok());
  EXPECT_FALSE(fs::exists(three + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(three + "/model-00001-of-00003.safetensors"));
  EXPECT_EQ(ReadBytes(three + "/model.safetensors"), ReadBytes(one + "/model.safetensors"));
}

TEST(TinyModelTest, Bf16IsTheRoundedF32Model) {
  const std::string f32 = FreshDir("f32"), bf16 = FreshDir("bf16");
  TinyModelOptions options;
  options.dtype = DType::kF32;
  ASSERT_TRUE(WriteTinyModel(options, f32).ok());
  options.dtype = DType::kBF16;
  ASSERT_TRUE(WriteTinyModel(options, bf16).ok());
  auto config = ModelConfig::FromFile(f32 + "/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->torch_dtype, DType::kF32);
  const Checkpoint cf = OpenOrDie(f32), cb = OpenOrDie(bf16);
  for (const std::string& name : cf.Names()) {
    const std::vector<float> vf = Values(cf, name), vb = Values(cb, name);
    ASSERT_EQ(vf.size(), vb.size());
    for (size_t i = 0; i < vf.size(); ++i) {
      ASSERT_EQ(RoundToBf16(vf[i]), vb[i]) << name << "[" << i << "]";
    }
  }
}

TEST(TinyModelTest, InitialisedLikeTheRealModels) {
  const std::string dir = FreshDir("init");
  TinyModelOptions options;
  options.dtype = DType::kF32;
  options.seed = 11;
  ASSERT_TRUE(WriteTinyModel(options, dir).ok());
  const Checkpoint c = OpenOrDie(dir);
  const ModelConfig config = *TinyPreset("tiny");
  double mean, stddev;
  for (int layer : {0, 2, 5}) {  // Mamba layers
    const std::string p = "backbone.layers." + std::to_string(layer) + ".mixer.";
    for (float a : Values(c, p + "A_log")) {
      EXPECT_GE(a, std::log(1.0f) - 1e-6);
      EXPECT_LE(a, std::log(16.0f) + 1e-5);
    }
    for (float b : Values(c, p + "dt_bias")) {
      const double dt = std::log1p(std::exp(static_cast<double>(b)));  // softplus
      EXPECT_GE(dt, 0.001 * 0.999);
      EXPECT_LE(dt, 0.1 * 1.001);
    }
    for (float d : Values(c, p + "D")) EXPECT_NEAR(d, 1.0, 0.6);
    MeanStd(Values(c, p + "norm.weight"), &mean, &stddev);
    EXPECT_NEAR(mean, 1.0, 0.05);
    MeanStd(Values(c, p + "in_proj.weight"), &mean, &stddev);
    EXPECT_NEAR(mean, 0.0, 0.02);
    EXPECT_NEAR(stddev, 1.0 / std::sqrt(64.0), 0.01);
    MeanStd(Values(c, p + "out_proj.weight"), &mean, &stddev);
    EXPECT_NEAR(stddev, 1.0 / std::sqrt(static_cast<double>(config.d_inner())), 0.02);
    for (float w : Values(c, p + "conv1d.weight")) EXPECT_LE(std::abs(w), 0.5f);
  }
  MeanStd(Values(c, "backbone.layers.1.mixer.down_proj.weight"), &mean, &stddev);
  EXPECT_NEAR(stddev, 1.0 / std::sqrt(128.0), 0.01);
  MeanStd(Values(c, "backbone.layers.3.mixer.o_proj.weight"), &mean, &stddev);
  EXPECT_NEAR(stddev, 1.0 / std::sqrt(128.0), 0.01);  // fan_in = q_dim
  MeanStd(Values(c, "backbone.embeddings.weight"), &mean, &stddev);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(stddev, 1.0, 0.01);
  MeanStd(Values(c, "backbone.norm_f.weight"), &mean, &stddev);
  EXPECT_NEAR(mean, 1.0, 0.05);
  EXPECT_GT(stddev, 0.0);
}

TEST(TinyModelTest, OptionsAreValidated) {
  const std::string dir = FreshDir("options");
  TinyModelOptions options;
  options.dtype = DType::kF16;
  EXPECT_THAT(std::string(WriteTinyModel(options, dir).message()),
              HasSubstr("tiny model dtype must be bf16 or f32, got f16"));
  options = {};
  options.num_shards = 0;
  EXPECT_THAT(std::string(WriteTinyModel(options, dir).message()),
              HasSubstr("shards must be in [1, "));
  options.num_shards = 100000;
  EXPECT_FALSE(WriteTinyModel(options, dir).ok());
  options = {};
  options.preset = "nope";
  EXPECT_THAT(std::string(WriteTinyModel(options, dir).message()), HasSubstr("'nope'"));
  options = {};
  options.tokenizer_json = dir + "/missing/tokenizer.json";
  const absl::Status s = WriteTinyModel(options, dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing/tokenizer.json does not exist"));
}

TEST(TinyModelTest, VocabSizeAndTokenizer) {
  const std::string dir = FreshDir("vocab");
  const std::string tokenizer = FreshDir("tok.json");
  std::ofstream(tokenizer) << "{\"model\": {\"type\": \"BPE\"}}";
  TinyModelOptions options;
  options.vocab_size = 5000;
  options.tokenizer_json = tokenizer;
  ASSERT_TRUE(WriteTinyModel(options, dir).ok());
  EXPECT_EQ(ReadBytes(dir + "/tokenizer.json"), ReadBytes(tokenizer));
  auto config = ModelConfig::FromFile(dir + "/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->vocab_size, 5000);
  const Checkpoint c = OpenOrDie(dir);
  EXPECT_EQ(c.Info("backbone.embeddings.weight")->shape, (Shape{5000, 64}));
  EXPECT_TRUE(ValidateCheckpoint(*config, c).ok());
}

TEST(TinyModelTest, VocabCoversTheTokenizer) {
  const std::string dir = FreshDir("vocab_cover");
  const std::string tokenizer = FreshDir("big_tok.json");
  std::ofstream(tokenizer)
      << "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\"}],"
         " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1000, \"b\": 5000}}}";
  TinyModelOptions options;
  options.tokenizer_json = tokenizer;
  ASSERT_TRUE(WriteTinyModel(options, dir).ok());
  auto config = ModelConfig::FromFile(dir + "/config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->vocab_size, 5056);  // 5001 ids rounded up to a multiple of 64

  options.vocab_size = 4096;
  const absl::Status s = WriteTinyModel(options, dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("vocab_size 4096 is smaller than the 5001 token ids"));

  std::ofstream(tokenizer, std::ios::trunc) << "[1, 2";
  options.vocab_size = 0;
  EXPECT_THAT(std::string(WriteTinyModel(options, dir).message()),
              HasSubstr("is not a JSON object"));
}

// ValidateCheckpoint on tiny checkpoints with one thing wrong.
class ValidateCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = *TinyPreset("tiny");
    auto weights = GenerateWeights(config_, 1, DType::kBF16);
    ASSERT_TRUE(weights.ok()) << weights.status();
    weights_ = *weights;
  }

  absl::Status Check(const std::vector<std::pair<std::string, Tensor>>& tensors,
                     const std::string& name) {
    const std::string dir = FreshDir("validate_" + name);
    EXPECT_TRUE(WriteCheckpoint(dir, tensors, 2).ok());
    auto checkpoint = Checkpoint::Open(dir);
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    return ValidateCheckpoint(config_, *checkpoint);
  }

  std::vector<std::pair<std::string, Tensor>> Without(const std::string& name) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& t : weights_) {
      if (t.first != name) out.push_back(t);
    }
    return out;
  }

  ModelConfig config_;
  std::vector<std::pair<std::string, Tensor>> weights_;
};

TEST_F(ValidateCheckpointTest, CompleteCheckpointIsValid) {
  EXPECT_TRUE(Check(weights_, "ok").ok());
}

TEST_F(ValidateCheckpointTest, MissingTensor) {
  const absl::Status s = Check(Without("backbone.layers.3.mixer.k_proj.weight"), "missing");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("checkpoint is missing tensor backbone.layers.3.mixer.k_proj.weight "
                        "(shape [64, 64])"));
}

TEST_F(ValidateCheckpointTest, WrongShapeNamesFileAndTensor) {
  auto tensors = weights_;
  for (auto& [name, tensor] : tensors) {
    if (name == "backbone.layers.2.mixer.in_proj.weight") {
      tensor = Tensor::Zeros(DType::kBF16, {263, 64});
    }
  }
  const absl::Status s = Check(tensors, "shape");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("safetensors tensor backbone.layers.2.mixer.in_proj.weight: expected "
                        "shape [264, 64], found [263, 64]"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("model-0000"));
}

TEST_F(ValidateCheckpointTest, NonFloatingDType) {
  auto tensors = weights_;
  for (auto& [name, tensor] : tensors) {
    if (name == "backbone.norm_f.weight") tensor = Tensor::Zeros(DType::kI32, {64});
  }
  const absl::Status s = Check(tensors, "dtype");
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("backbone.norm_f.weight: expected a floating dtype, found i32"));
}

TEST_F(ValidateCheckpointTest, SameSizeDTypeOtherThanTheConfigsIsRefused) {
  ASSERT_EQ(config_.torch_dtype, DType::kBF16);
  auto tensors = weights_;
  for (auto& [name, tensor] : tensors) {
    if (name == "backbone.layers.1.mixer.up_proj.weight") {
      tensor = Tensor::Zeros(DType::kF16, tensor.shape());
    }
  }
  const absl::Status s = Check(tensors, "f16");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("tensor backbone.layers.1.mixer.up_proj.weight: stored as f16 but "
                        "config.json declares torch_dtype bfloat16 (bf16)"));
  // The other way round: an f16 config with a bf16 tensor.
  config_.torch_dtype = DType::kF16;
  const absl::Status r = Check(weights_, "bf16_in_f16");
  EXPECT_THAT(std::string(r.message()),
              HasSubstr(": stored as bf16 but config.json declares torch_dtype float16 (f16)"));
  // A wider float is unambiguous: f32 tensors in a bf16 checkpoint load.
  config_.torch_dtype = DType::kBF16;
  for (auto& [name, tensor] : tensors) {
    if (name == "backbone.layers.1.mixer.up_proj.weight") {
      tensor = Tensor::Zeros(DType::kF32, tensor.shape());
    }
  }
  EXPECT_TRUE(Check(tensors, "f32_in_bf16").ok());
}

TEST_F(ValidateCheckpointTest, EmbeddingSpellings) {
  auto tensors = weights_;
  ASSERT_EQ(tensors[0].first, "backbone.embeddings.weight");
  tensors[0].first = "backbone.embedding.weight";
  EXPECT_TRUE(Check(tensors, "singular").ok());
  {
    const std::string dir = ::testing::TempDir() + "/tiny_model_test_" + std::to_string(getpid()) +
                            "_validate_singular";
    auto checkpoint = Checkpoint::Open(dir);
    ASSERT_TRUE(checkpoint.ok());
    EXPECT_EQ(*EmbeddingName(*checkpoint), "backbone.embedding.weight");
  }
  tensors.push_back({"backbone.embeddings.weight", weights_[0].second});
  EXPECT_THAT(std::string(Check(tensors, "both").message()),
              HasSubstr("both backbone.embeddings.weight and backbone.embedding.weight"));
  const absl::Status none = Check(Without("backbone.embeddings.weight"), "none");
  EXPECT_EQ(none.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(none.message()), HasSubstr("checkpoint has no embedding"));
}

TEST_F(ValidateCheckpointTest, ExtraTensorsOtherThanMtp) {
  auto tensors = weights_;
  tensors.push_back({"mtp.layers.0.weight", Tensor::Zeros(DType::kBF16, {4})});
  EXPECT_TRUE(Check(tensors, "mtp").ok());
  tensors.push_back({"backbone.layers.11.norm.weight", Tensor::Zeros(DType::kBF16, {64})});
  const absl::Status s = Check(tensors, "extra");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("holds tensor backbone.layers.11.norm.weight, which a 11-layer "
                        "nemotron_h model with pattern M-M*-MM-M*- does not have"));
}

}  // namespace
}  // namespace tandem::core
