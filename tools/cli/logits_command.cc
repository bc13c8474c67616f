// tandem logits: all-position logits of a prompt, written as a float32 NumPy .npy [T, V].
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "model/cuda/local_backend.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "tools/cli/command.h"
#include "tools/cli/distributed_args.h"
#include "tools/cli/model_args.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "logits";

absl::Status WriteNpy(const std::string& path, const core::Tensor& t) {
  std::string header = absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (", t.dim(0),
                                    ", ", t.dim(1), "), }");
  // Magic (6) + version (2) + header length (2) + header + '\n', padded to a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) return absl::NotFoundError(absl::StrCat("cannot write ", path));
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), header.size());
  out.write(static_cast<const char*>(t.raw()), t.nbytes());
  if (!out) return absl::DataLossError(absl::StrCat("failed writing ", path));
  return absl::OkStatus();
}

absl::Status Run(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"model", "tokens", "out", "reference-kernels", "tp", "pp",
                                   "stage-layers", "collective", "backend"}));
  ASSIGN_OR_RETURN(LocalModelArgs margs, ParseLocalModelArgs(args));
  const std::string out = args.GetOr("out", "");
  if (out.empty()) return absl::InvalidArgumentError("--out FILE.npy is required");
  const std::string backend = args.GetOr("backend", "cpu");
  RETURN_IF_ERROR(model::CheckBackend(backend));
  ASSIGN_OR_RETURN(std::optional<worker::LocalClusterOptions> distributed,
                   ParseDistributedArgs(args, margs));
  if (backend != "cpu" && distributed) {
    return absl::InvalidArgumentError("--backend cuda runs one GPU: --tp/--pp are CPU-only");
  }
  core::Tensor logits;
  if (backend == "cuda") {
    ASSIGN_OR_RETURN(logits, model::CudaPromptLogits(margs.model_dir, margs.options, margs.tokens));
  } else if (distributed) {
    ASSIGN_OR_RETURN(auto cluster, worker::LocalCluster::Start(*distributed));
    ASSIGN_OR_RETURN(logits, worker::DistributedPromptLogits(*cluster, margs.tokens));
  } else {
    ASSIGN_OR_RETURN(auto model, model::NemotronHModel::Load(margs.model_dir, margs.options));
    ASSIGN_OR_RETURN(logits, model::PromptLogits(*model, margs.tokens));
  }
  RETURN_IF_ERROR(WriteNpy(out, logits));
  std::printf("wrote %s: float32 [%ld, %ld]\n", out.c_str(), static_cast<long>(logits.dim(0)),
              static_cast<long>(logits.dim(1)));
  return absl::OkStatus();
}

TANDEM_COMMAND(
    kName, "all-position logits of a prompt as a float32 .npy [T, V]",
    "--model DIR --tokens 1,2,3 --out FILE.npy [options]\n\n"
    "  --model DIR           model directory (required, no default)\n"
    "  --tokens IDS          comma-separated prompt token ids (required, no default)\n"
    "  --out FILE.npy        where the logits go (required; default: none)\n"
    "  --reference-kernels   plain reference kernels instead of fast paths (default off)\n"
    "  --tp N                tensor-parallel worker processes (default 1)\n"
    "  --pp M                pipeline stages (default 1)\n"
    "  --stage-layers A,B    layers per stage (default: balanced by cost)\n"
    "  --collective C        gloo or ucx between TP ranks (default gloo)\n"
    "  --backend B           cpu or cuda (default cpu)",
    {"reference-kernels"}, [](const Args& args) {
      absl::Status s = Run(args);
      return s.ok() ? 0 : Fail(kName, s);
    });

}  // namespace
}  // namespace tandem::cli
