// tandem perplexity: exp(mean negative log-likelihood) of a text under a model, on any backend,
// dtype and tp x pp layout; the quality check of docs/models.md ("The default model").
//
// The text is tokenized without special tokens and scored in consecutive windows of at most
// --window tokens, each preceded by the model's BOS token and run as one fresh prompt: every
// token of the text is predicted once, from at most --window - 1 tokens of its own window.
#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/model_config.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "model/cuda/local_backend.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "nlohmann/json.hpp"
#include "tokenizer/tokenizer.h"
#include "tools/cli/command.h"
#include "tools/cli/default_model.h"
#include "tools/cli/distributed_args.h"
#include "tools/cli/model_args.h"

namespace tandem::cli {
namespace {

namespace fs = std::filesystem;
constexpr char kName[] = "perplexity";

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --text-file ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Copies `dir` (config.json, tokenizer.json, every tensor of the checkpoint) into `out` with every
// tensor converted to `dtype`: the same weights, another compute precision (docs/numerics.md).
absl::Status ConvertModel(const std::string& dir, core::DType dtype, const std::string& out) {
  ASSIGN_OR_RETURN(core::Checkpoint ckpt, core::Checkpoint::Open(dir));
  std::vector<std::pair<std::string, core::Tensor>> tensors;
  for (const std::string& name : ckpt.Names()) {
    ASSIGN_OR_RETURN(core::Tensor t, ckpt.Get(name));
    tensors.emplace_back(name, t.To(dtype));
  }
  RETURN_IF_ERROR(core::WriteCheckpoint(out, tensors, 1));
  std::error_code ec;
  for (const char* f : {"config.json", "tokenizer.json"}) {
    fs::copy_file(fs::path(dir) / f, fs::path(out) / f, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return absl::NotFoundError(
          absl::StrCat("cannot copy ", (fs::path(dir) / f).string(), ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

// Sum over positions t < T-1 of -log softmax(logits[t])[prompt[t+1]], in double.
double WindowNll(const core::Tensor& logits, const std::vector<int32_t>& prompt) {
  const int64_t vocab = logits.dim(1);
  const float* data = logits.data<float>();
  double nll = 0;
  for (size_t t = 0; t + 1 < prompt.size(); ++t) {
    const float* row = data + static_cast<int64_t>(t) * vocab;
    double max = row[0];
    for (int64_t v = 1; v < vocab; ++v) max = std::max(max, static_cast<double>(row[v]));
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
    nll += max + std::log(sum) - static_cast<double>(row[prompt[t + 1]]);
  }
  return nll;
}

absl::Status Run(const Args& args) {
  RETURN_IF_ERROR(
      args.CheckKnown({"model", "text-file", "window", "dtype", "json", "reference-kernels", "tp",
                       "pp", "stage-layers", "collective", "backend"}));
  LocalModelArgs margs;
  if (auto m = args.Get("model")) {
    margs.model_dir = *m;
  } else {
    ASSIGN_OR_RETURN(margs.model_dir, DefaultModelDir());
  }
  margs.options.reference_kernels = args.Has("reference-kernels");
  const std::string text_file = args.GetOr("text-file", "");
  if (text_file.empty()) return absl::InvalidArgumentError("--text-file FILE is required");
  ASSIGN_OR_RETURN(int64_t window, args.GetInt("window", 256));
  if (window < 1) return absl::InvalidArgumentError("--window must be >= 1");
  const std::string dtype_name = args.GetOr("dtype", "model");
  if (dtype_name != "model" && dtype_name != "f32" && dtype_name != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype must be model, f32 or bf16, got ", dtype_name));
  }
  const std::string backend = args.GetOr("backend", "cpu");
  RETURN_IF_ERROR(model::CheckBackend(backend));

  ASSIGN_OR_RETURN(std::string text, ReadFile(text_file));
  ASSIGN_OR_RETURN(auto tokenizer,
                   tokenizer::Tokenizer::FromFile((fs::path(margs.model_dir) / "tokenizer.json")));
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer->Encode(text, false));
  if (ids.empty()) return absl::InvalidArgumentError("--text-file has no tokens: " + text_file);
  ASSIGN_OR_RETURN(core::ModelConfig config,
                   core::ModelConfig::FromFile((fs::path(margs.model_dir) / "config.json")));
  if (window + 1 > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--window ", window,
                                                   " + BOS exceeds the model's maximum of ",
                                                   config.max_position_embeddings, " positions"));
  }

  // The model in the asked dtype: as stored, or converted into a temporary directory.
  ASSIGN_OR_RETURN(core::Checkpoint ckpt, core::Checkpoint::Open(margs.model_dir));
  ASSIGN_OR_RETURN(const std::string embedding, core::EmbeddingName(ckpt));
  ASSIGN_OR_RETURN(core::TensorInfo info, ckpt.Info(embedding));
  const core::DType stored = info.dtype;
  core::DType dtype = stored;
  if (dtype_name == "f32") dtype = core::DType::kF32;
  if (dtype_name == "bf16") dtype = core::DType::kBF16;
  std::string converted;
  absl::Cleanup remove_converted = [&converted] {
    std::error_code ec;
    if (!converted.empty()) fs::remove_all(converted, ec);
  };
  if (dtype != stored) {
    std::string tmpl = (fs::temp_directory_path() / "tandem-perplexity-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot create a temporary directory ", tmpl));
    }
    converted = tmpl;
    RETURN_IF_ERROR(ConvertModel(margs.model_dir, dtype, converted));
    margs.model_dir = converted;
  }

  margs.tokens.assign(static_cast<size_t>(window) + 1, 0);  // sizes the KV cache of a cluster
  ASSIGN_OR_RETURN(std::optional<worker::LocalClusterOptions> distributed,
                   ParseDistributedArgs(args, margs));
  if (backend != "cpu" && distributed) {
    return absl::InvalidArgumentError("--backend cuda runs one GPU: --tp/--pp are CPU-only");
  }
  std::unique_ptr<worker::LocalCluster> cluster;
  std::unique_ptr<model::NemotronHModel> local;
  if (distributed) {
    ASSIGN_OR_RETURN(cluster, worker::LocalCluster::Start(*distributed));
  } else if (backend == "cpu") {
    ASSIGN_OR_RETURN(local, model::NemotronHModel::Load(margs.model_dir, margs.options));
  }
  double nll = 0;
  int64_t windows = 0;
  for (size_t start = 0; start < ids.size(); start += static_cast<size_t>(window)) {
    std::vector<int32_t> prompt = {static_cast<int32_t>(config.bos_token_id)};
    const size_t end = std::min(ids.size(), start + static_cast<size_t>(window));
    prompt.insert(prompt.end(), ids.begin() + static_cast<int64_t>(start),
                  ids.begin() + static_cast<int64_t>(end));
    core::Tensor logits;
    if (cluster) {
      ASSIGN_OR_RETURN(logits, worker::DistributedPromptLogits(*cluster, prompt));
    } else if (local) {
      ASSIGN_OR_RETURN(logits, model::PromptLogits(*local, prompt));
    } else {
      ASSIGN_OR_RETURN(logits, model::CudaPromptLogits(margs.model_dir, margs.options, prompt));
    }
    nll += WindowNll(logits, prompt);
    ++windows;
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  const double ppl = std::exp(nll / static_cast<double>(n));
  const std::string dtype_out(core::DTypeName(dtype));
  const int64_t tp = distributed ? distributed->tp : 1;
  const int64_t pp = distributed ? distributed->pp : 1;
  if (args.Has("json")) {
    nlohmann::json j = {{"perplexity", ppl},
                        {"nll_per_token", nll / static_cast<double>(n)},
                        {"tokens", n},
                        {"windows", windows},
                        {"window", window},
                        {"dtype", dtype_out},
                        {"backend", backend},
                        {"tp", tp},
                        {"pp", pp}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f (%ld tokens in %ld windows of <= %ld; %s, %s, tp=%ld pp=%ld)\n",
                ppl, static_cast<long>(n), static_cast<long>(windows), static_cast<long>(window),
                dtype_out.c_str(), backend.c_str(), static_cast<long>(tp), static_cast<long>(pp));
  }
  return absl::OkStatus();
}

TANDEM_COMMAND(
    kName, "perplexity of a text file under a model (any backend, dtype, tp x pp layout)",
    "--text-file F [--model DIR] [options]\n\n"
    "The text is tokenized without special tokens and scored in consecutive windows, each\n"
    "preceded by BOS; prints exp(mean negative log-likelihood) over all its tokens.\n\n"
    "  --text-file F         the text (required, no default)\n"
    "  --model DIR           model directory (default: the built-in default model)\n"
    "  --window N            tokens per window (default 256)\n"
    "  --dtype D             model (as stored), f32 or bf16: the weights converted (default "
    "model)\n"
    "  --json                one JSON object instead of a line (default off)\n"
    "  --reference-kernels   plain reference kernels instead of fast paths (default off)\n"
    "  --tp N                tensor-parallel worker processes (default 1)\n"
    "  --pp M                pipeline stages (default 1)\n"
    "  --stage-layers A,B    layers per stage (default: balanced by cost)\n"
    "  --collective C        gloo or ucx between TP ranks (default gloo)\n"
    "  --backend B           cpu or cuda (default cpu)",
    {"json", "reference-kernels"}, [](const Args& args) {
      absl::Status s = Run(args);
      return s.ok() ? 0 : Fail(kName, s);
    });

}  // namespace
}  // namespace tandem::cli
