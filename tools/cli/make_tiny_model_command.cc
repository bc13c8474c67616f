// tandem make-tiny-model: writes a small, deterministic Nemotron-H checkpoint (core/tiny_model.h).
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/dtype.h"
#include "core/tiny_model.h"
#include "tools/cli/command.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "make-tiny-model";

int Run(const Args& args) {
  if (auto s = args.CheckKnown({"seed", "dtype", "shards", "preset", "vocab-size", "tokenizer"});
      !s.ok()) {
    return Fail(kName, s);
  }
  if (args.positional().size() != 1) {
    return Fail(kName, absl::InvalidArgumentError("expected exactly one argument: the output DIR"));
  }
  const std::string dir = args.positional()[0];
  core::TinyModelOptions options;
  options.preset = args.GetOr("preset", std::string(core::kDefaultTinyPreset));
  auto seed = args.GetInt("seed", 0);
  if (!seed.ok()) return Fail(kName, seed.status());
  if (*seed < 0) return Fail(kName, absl::InvalidArgumentError("--seed must be >= 0"));
  options.seed = static_cast<uint64_t>(*seed);
  const std::string dtype = args.GetOr("dtype", "bf16");
  if (dtype == "bf16") {
    options.dtype = core::DType::kBF16;
  } else if (dtype == "f32") {
    options.dtype = core::DType::kF32;
  } else {
    return Fail(kName, absl::InvalidArgumentError(
                           absl::StrCat("--dtype '", dtype, "' is not one of bf16, f32")));
  }
  auto shards = args.GetInt("shards", 1);
  if (!shards.ok()) return Fail(kName, shards.status());
  options.num_shards = static_cast<int>(std::min<int64_t>(std::max<int64_t>(*shards, 0), 1 << 20));
  auto vocab = args.GetInt("vocab-size", 0);
  if (!vocab.ok()) return Fail(kName, vocab.status());
  options.vocab_size = *vocab;
  options.tokenizer_json = args.GetOr("tokenizer", SourceTreeTokenizer());

  if (auto s = core::WriteTinyModel(options, dir); !s.ok()) return Fail(kName, s);
  std::printf("wrote tiny model '%s' (seed %llu, %s, %d shard%s%s) to %s\n", options.preset.c_str(),
              static_cast<unsigned long long>(options.seed), dtype.c_str(), options.num_shards,
              options.num_shards == 1 ? "" : "s",
              options.tokenizer_json.empty() ? ", no tokenizer" : ", with tokenizer.json",
              dir.c_str());
  return 0;
}

TANDEM_COMMAND(kName, "write a small deterministic Nemotron-H checkpoint (HF layout)",
               "DIR [options]\n\n"
               "  --seed N              weight seed (default 0)\n"
               "  --dtype D             bf16 or f32 weights (default bf16)\n"
               "  --shards K            safetensors files to split the weights into (default 1)\n"
               "  --preset NAME         " +
                   absl::StrJoin(core::TinyPresetNames(), ", ") +
                   " (default tiny)\n"
                   "  --vocab-size N        vocabulary size (default: the preset's, or the "
                   "tokenizer's)\n"
                   "  --tokenizer FILE      tokenizer.json to copy (default: the source tree's "
                   "tests/testdata/tokenizer/tokenizer.json when it exists)",
               {}, Run);

}  // namespace
}  // namespace tandem::cli
