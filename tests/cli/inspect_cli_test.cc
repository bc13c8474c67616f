// Runs the real `tandem` executable: make-tiny-model and inspect.
#include "tests/cli/cli_test_util.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;
using namespace tandem::cli::testing;

TEST(InspectCliTest, RealConfigParameterCounts) {
  struct Case {
    const char* name;
    int64_t parameters, mamba, attention, mlp, kv;
  };
  for (const Case& c : {Case{"nemotron-h-8b", 8100852736, 24, 4, 24, 16384},
                        Case{"nemotron-h-47b", 46791554816, 45, 5, 48, 20480},
                        Case{"nemotron-h-56b", 56324350464, 54, 10, 54, 40960}}) {
    SCOPED_TRACE(c.name);
    const Json j = InspectJson(Config(c.name));
    EXPECT_EQ(j.value("parameters", int64_t{0}), c.parameters);
    EXPECT_EQ(j.value("weight_bytes", int64_t{0}), 2 * c.parameters);
    EXPECT_EQ(j["layers"]["mamba"], c.mamba);
    EXPECT_EQ(j["layers"]["attention"], c.attention);
    EXPECT_EQ(j["layers"]["mlp"], c.mlp);
    EXPECT_EQ(j["kv_bytes_per_token"], c.kv);
    EXPECT_TRUE(j["checkpoint"].is_null());
    EXPECT_EQ(j["model"]["parameters"], c.parameters);
  }
  const Json j = InspectJson(Config("nemotron-h-8b"));
  EXPECT_EQ(j["ssm_state_bytes_per_sequence"], 100663296);
  EXPECT_EQ(j["conv_state_bytes_per_sequence"], 1474560);
  const Result human = Tandem("inspect " + Config("nemotron-h-8b"));
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_THAT(human.output, HasSubstr("8,100,852,736 parameters"));
}

TEST(InspectCliTest, PerRankWithTensorParallelism) {
  const Json j = InspectJson(Config("nemotron-h-8b") + " --tp 4");
  EXPECT_EQ(j["tp"], 4);
  EXPECT_EQ(j["ssm_state_bytes_per_sequence"], 100663296 / 4);
  EXPECT_EQ(j["conv_state_bytes_per_sequence"], 1474560 / 4);
  EXPECT_EQ(j["kv_bytes_per_token"], 16384 / 4);
  // Everything splits 4 ways except the 52 + 1 replicated RMSNorm weights.
  EXPECT_EQ(j["parameters"], (8100852736 - 53 * 4096) / 4 + 53 * 4096);
  EXPECT_EQ(j["model"]["parameters"], 8100852736);
}

TEST(InspectCliTest, StagesWithPipelineParallelism) {
  const Json j = InspectJson(Config("nemotron-h-56b") + " --pp 3");
  ASSERT_EQ(j["stages"].size(), 3u);
  int64_t next = 0, parameters = 0, mamba = 0;
  for (const Json& s : j["stages"]) {
    EXPECT_EQ(s["layer_begin"], next);
    EXPECT_GT(s["layer_end"].get<int64_t>(), next);
    next = s["layer_end"];
    parameters += s["parameters"].get<int64_t>();
    mamba += s["layers"]["mamba"].get<int64_t>();
    EXPECT_LE(s["parameters"].get<int64_t>(), j["parameters"].get<int64_t>());
  }
  EXPECT_EQ(next, 118);
  EXPECT_EQ(parameters, 56324350464);
  EXPECT_EQ(mamba, 54);

  const Json p = InspectJson(Config("nemotron-h-8b") + " --partition 20,20,12 --tp 2");
  ASSERT_EQ(p["stages"].size(), 3u);
  EXPECT_EQ(p["pp"], 3);
  EXPECT_EQ(p["stages"][1]["layer_begin"], 20);
  EXPECT_EQ(p["stages"][2]["layer_begin"], 40);
}

TEST(InspectCliTest, BadLayoutsAndInputsFailWithAReason) {
  Result r = Tandem("inspect " + Config("nemotron-h-8b") + " --tp 3", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("tp=3 does not divide n_groups (8); valid tp sizes for this "
                                  "model: 1, 2, 4, 8"));
  r = Tandem("inspect " + Config("nemotron-h-8b") + " --pp 60", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("pp=60 is not in [1, num_hidden_layers = 52]"));
  r = Tandem("inspect " + Config("nemotron-h-8b") + " --partition 20,20", true);
  EXPECT_THAT(r.output, HasSubstr("has 40 layers but the model has 52"));
  r = Tandem("inspect /nonexistent/model", true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("cannot open config file /nonexistent/model/config.json"));
  r = Tandem("inspect " + Config("nemotron-h-8b") + " --bogus 1", true);
  EXPECT_THAT(r.output, HasSubstr("unknown option --bogus"));
}

TEST(MakeTinyModelCliTest, WritesAModelThatInspectValidates) {
  const std::string dir = FreshDir("tiny_f32");
  Result r = Tandem("make-tiny-model " + dir + " --seed 5 --dtype f32 --shards 2", true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  const Json j = InspectJson(dir);
  EXPECT_EQ(j["dtype"], "f32");
  EXPECT_EQ(j["num_hidden_layers"], 11);
  EXPECT_EQ(j["checkpoint"]["valid"], true);
  EXPECT_EQ(j["checkpoint"]["tensors"], 70);
  EXPECT_EQ(j["checkpoint"]["bytes"], j["weight_bytes"]);  // every tensor in f32
  EXPECT_EQ(j["weight_bytes"], 4 * j["parameters"].get<int64_t>());

  const Json staged = InspectJson(dir + " --tp 4 --pp 3");
  EXPECT_EQ(staged["stages"].size(), 3u);

  // A checkpoint that does not match its config is reported, naming the tensor.
  const std::string other = FreshDir("tiny7");
  ASSERT_EQ(Tandem("make-tiny-model " + other + " --preset tiny-7").exit_code, 0);
  fs::copy_file(other + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
  r = Tandem("inspect " + dir, true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("does not match its config"));
  EXPECT_THAT(r.output, HasSubstr("backbone.embeddings.weight"));
}

TEST(MakeTinyModelCliTest, DeterministicPerSeed) {
  const std::string a = FreshDir("seed_a"), b = FreshDir("seed_b"), c = FreshDir("seed_c");
  ASSERT_EQ(Tandem("make-tiny-model " + a + " --seed 9").exit_code, 0);
  ASSERT_EQ(Tandem("make-tiny-model " + b + " --seed 9").exit_code, 0);
  ASSERT_EQ(Tandem("make-tiny-model " + c + " --seed 10").exit_code, 0);
  const std::string bytes = ReadBytes(a + "/model.safetensors");
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes, ReadBytes(b + "/model.safetensors"));
  EXPECT_NE(bytes, ReadBytes(c + "/model.safetensors"));
}

TEST(MakeTinyModelCliTest, BadOptions) {
  const std::string dir = FreshDir("bad");
  Result r = Tandem("make-tiny-model " + dir + " --dtype f16", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--dtype 'f16' is not one of bf16, f32"));
  r = Tandem("make-tiny-model " + dir + " --preset nope", true);
  EXPECT_THAT(r.output, HasSubstr("unknown tiny model preset 'nope'; presets: tiny, tiny-7"));
  r = Tandem("make-tiny-model " + dir + " --seed x", true);
  EXPECT_THAT(r.output, HasSubstr("--seed: 'x' is not an integer"));
  r = Tandem("make-tiny-model", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(dir + "/config.json"));
}

}  // namespace
