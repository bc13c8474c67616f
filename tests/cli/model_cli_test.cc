// Runs the real `tandem` executable: logits and generate on tiny models, and their errors.
#include "tests/cli/cli_test_util.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace tandem::cli::testing;

std::string TinyModel(const std::string& name, const std::string& flags) {
  const std::string dir = FreshDir(name);
  const Result r = Tandem("make-tiny-model " + dir + " " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return dir;
}

TEST(ModelCliTest, LogitsWritesAllPositionsAsNpy) {
  const std::string model = TinyModel("logits", "--seed 5 --dtype f32");
  const std::string out = FreshDir("logits_out") + ".npy";
  CreatedDirs().push_back(out);
  const Result r = Tandem("logits --model " + model + " --tokens 1,2,3,4 --out " + out, true);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string bytes = ReadBytes(out);
  ASSERT_GT(bytes.size(), 128u);
  EXPECT_EQ(bytes.substr(0, 6), "\x93NUMPY");
  EXPECT_THAT(bytes.substr(0, 128), HasSubstr("'shape': (4, 4096)"));
  const size_t header =
      10 + static_cast<unsigned char>(bytes[8]) + 256 * static_cast<unsigned char>(bytes[9]);
  EXPECT_EQ(header % 64, 0u);
  EXPECT_EQ(bytes.size(), header + 4 * 4096 * sizeof(float));
}

TEST(ModelCliTest, GreedyAndSeededGenerationAreReproducible) {
  const std::string model = TinyModel("generate", "--seed 9");
  const std::string base = "generate --model " + model + " --tokens 5,6,7,8 --max-new-tokens 12 ";
  const Result greedy = Tandem(base + "--ignore-eos");
  ASSERT_EQ(greedy.exit_code, 0);
  EXPECT_EQ(Tandem(base + "--ignore-eos").output, greedy.output);
  // Twelve comma-separated ids on one line.
  EXPECT_EQ(std::count(greedy.output.begin(), greedy.output.end(), ','), 11);
  const Result a = Tandem(base + "--ignore-eos --temperature 1.0 --top-k 50 --seed 42");
  const Result b = Tandem(base + "--ignore-eos --temperature 1.0 --top-k 50 --seed 42");
  const Result c = Tandem(base + "--ignore-eos --temperature 1.0 --top-k 50 --seed 43");
  ASSERT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.output, b.output);
  EXPECT_NE(a.output, c.output);
}

TEST(ModelCliTest, BadInputIsAnErrorNamingTheProblem) {
  const std::string model = TinyModel("bad", "--seed 1");
  Result r = Tandem("generate --model " + model + " --tokens 1,4096", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("token id 4096"));
  r = Tandem("generate --model " + model + " --tokens ''", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("empty"));
  r = Tandem("generate --model " + model + " --tokens 1,2 --max-new-tokens 5000", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("exceeds the model's maximum"));
  r = Tandem("generate --model " + model + " --tokens 1,2 --temperature -1", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--temperature"));
  fs::remove(model + "/model.safetensors");
  r = Tandem("logits --model " + model + " --tokens 1 --out /dev/null", true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("safetensors"));
}

}  // namespace
