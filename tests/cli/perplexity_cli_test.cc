// The quality check of the default model (docs/models.md): `tandem perplexity` of the held-out
// excerpt on the CPU backend in every dtype and tp x pp layout stays within a small tolerance of
// the f32 single-process value, which equals the training framework's number (PyTorch, recorded
// in models/default/training.json) and is far below a random model's. CUDA is not covered here.
#include <cmath>

#include "tests/cli/cli_test_util.h"

namespace {

using namespace tandem::cli::testing;

// Runs without --model write the built-in model under $XDG_CACHE_HOME: the build directory's.
const bool kTestCache = [] {
  return setenv("XDG_CACHE_HOME", (std::string(TANDEM_BINARY_DIR) + "/test-cache").c_str(), 1) == 0;
}();

const std::string& ModelDir() {
  static const std::string dir = std::string(TANDEM_SOURCE_DIR) + "/models/default";
  return dir;
}

std::string HeldOut() { return ModelDir() + "/heldout.txt"; }

Json Training() {
  std::ifstream in(ModelDir() + "/training.json");
  return Json::parse(in);
}

// The JSON object `tandem perplexity --json` printed last in `output`, or an empty object.
Json LastObject(const std::string& output) {
  const size_t last = output.find_last_of('{');
  if (last == std::string::npos) return Json::object();
  return Json::parse(output.substr(last), nullptr, false);
}

// `tandem perplexity --json` with each of `flags`, all started at once (the runs mostly wait on
// process start-up and rendezvous): one parsed object per run, empty when that run failed.
std::vector<Json> PerplexityAll(const std::vector<std::string>& flags) {
  std::vector<FILE*> pipes;
  for (const std::string& f : flags) {
    const std::string command = std::string(TANDEM_BINARY_DIR) +
                                "/bin/tandem perplexity --json --text-file " + HeldOut() + " " + f +
                                " 2>&1";
    pipes.push_back(popen(command.c_str(), "r"));
  }
  std::vector<Json> out;
  for (size_t i = 0; i < pipes.size(); ++i) {
    std::string output;
    if (pipes[i] != nullptr) {
      char buffer[4096];
      size_t n;
      while ((n = fread(buffer, 1, sizeof buffer, pipes[i])) > 0) output.append(buffer, n);
    }
    const int status = pipes[i] == nullptr ? -1 : pclose(pipes[i]);
    const bool ok = status == 0;
    EXPECT_TRUE(ok) << flags[i] << "\n" << output;
    out.push_back(ok ? LastObject(output) : Json::object());
  }
  return out;
}

Json Perplexity(const std::string& flags) { return PerplexityAll({flags})[0]; }

double F32Reference() {
  static const double value = [] {
    const Json j = Perplexity("--model " + ModelDir() + " --dtype f32");
    return j.value("perplexity", std::nan(""));
  }();
  return value;
}

TEST(PerplexityCliTest, TandemF32EqualsTheTrainingFramework) {
  const Json training = Training();
  const double torch_ppl = training.at("excerpt_perplexity_bf16_weights").get<double>();
  const Json j = Perplexity("--model " + ModelDir() + " --dtype f32");
  ASSERT_TRUE(j.contains("perplexity"));
  EXPECT_EQ(j.at("perplexity").get<double>(), F32Reference());  // deterministic
  EXPECT_EQ(j.at("tokens").get<int64_t>(), training.at("excerpt_tokens").get<int64_t>());
  EXPECT_EQ(j.at("window").get<int64_t>(), training.at("excerpt_window").get<int64_t>());
  // training.json rounds to 4 decimals; 1e-3 relative is the bound.
  EXPECT_NEAR(j.at("perplexity").get<double>(), torch_ppl, 1e-3 * torch_ppl);
}

TEST(PerplexityCliTest, EveryDtypeAndLayoutMatchesF32SingleProcess) {
  const double ref = F32Reference();
  ASSERT_TRUE(std::isfinite(ref));
  // tp divides n_groups = 4; pp = 3 splits the 8 layers unevenly.
  const std::vector<std::string> layouts = {"",       "--tp 2", "--tp 4",
                                            "--pp 2", "--pp 3", "--tp 2 --pp 2"};
  std::vector<std::string> flags;
  for (const char* dtype : {"f32", "bf16"}) {
    for (const std::string& layout : layouts) {
      if (std::string(dtype) == "f32" && layout.empty()) continue;  // that is `ref`
      flags.push_back("--model " + ModelDir() + " --dtype " + dtype + " " + layout);
    }
  }
  const std::vector<Json> results = PerplexityAll(flags);
  for (size_t i = 0; i < flags.size(); ++i) {
    // f32 layouts differ from one process only in summation order; bf16 rounds activations at
    // the reference's points (docs/numerics.md), a small change of the mean log-likelihood.
    const bool f32 = flags[i].find("f32") != std::string::npos;
    const double tol = f32 ? 1e-4 : 2e-2;
    EXPECT_NEAR(results[i].value("perplexity", 0.0), ref, tol * ref) << flags[i];
    EXPECT_EQ(results[i].value("dtype", ""), f32 ? "f32" : "bf16") << flags[i];
  }
}

TEST(PerplexityCliTest, FarBelowARandomModelWithTheSameTokenizer) {
  const double ref = F32Reference();
  const std::string random = FreshDir("random_model");
  const Result made = Tandem(
      "make-tiny-model " + random + " --seed 0 --tokenizer " + ModelDir() + "/tokenizer.json",
      true);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const double random_ppl = Perplexity("--model " + random).value("perplexity", 0.0);
  // Uniform guessing over 4096 ids is 4096; a random network is no better.
  EXPECT_GT(random_ppl, 1000.0);
  EXPECT_LT(ref, 0.05 * random_ppl);
  EXPECT_LT(ref, 200.0);
}

TEST(PerplexityCliTest, BuiltInModelIsTheShippedOne) {
  // Without --model: the model embedded in the executable, as stored (bf16).
  ASSERT_TRUE(kTestCache);
  const Json embedded = Perplexity("");
  const Json shipped = Perplexity("--model " + ModelDir());
  ASSERT_TRUE(embedded.contains("perplexity"));
  EXPECT_EQ(embedded.at("perplexity").get<double>(), shipped.at("perplexity").get<double>());
  EXPECT_EQ(embedded.at("dtype"), "bf16");
}

TEST(PerplexityCliTest, DefaultModelCommandWritesTheEmbeddedFiles) {
  const std::string cache = FreshDir("default_model_cache");
  setenv("XDG_CACHE_HOME", cache.c_str(), 1);
  const Result written = Tandem("default-model");
  ASSERT_EQ(written.exit_code, 0) << written.output;
  const std::string dir = written.output.substr(0, written.output.find('\n'));
  EXPECT_EQ(dir.rfind(cache + "/tandem/default-model-", 0), 0u) << dir;
  for (const char* f : {"config.json", "tokenizer.json", "model.safetensors"}) {
    EXPECT_EQ(ReadBytes(dir + "/" + f), ReadBytes(ModelDir() + "/" + f)) << f;
  }
  EXPECT_EQ(Tandem("default-model").output, written.output);  // reused, same directory
  setenv("XDG_CACHE_HOME", (std::string(TANDEM_BINARY_DIR) + "/test-cache").c_str(), 1);
}

TEST(PerplexityCliTest, BadArgumentsFailNamingTheOption) {
  Result r = Tandem("perplexity --model " + ModelDir(), true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--text-file"));
  r = Tandem("perplexity --text-file " + HeldOut() + " --dtype f16", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--dtype must be model, f32 or bf16, got f16"));
  r = Tandem("perplexity --text-file " + HeldOut() + " --window 0", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--window must be >= 1"));
  r = Tandem("perplexity --text-file /nonexistent/text.txt", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent/text.txt"));
}

}  // namespace
