// tandem generate --model DIR --tokens ...: generates token ids in this process (CPU backend).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "core/status.h"
#include "model/cuda/local_backend.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "tools/cli/command.h"
#include "tools/cli/distributed_args.h"
#include "tools/cli/generate_client.h"
#include "tools/cli/model_args.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "generate";

absl::Status Run(const Args& args) {
  // Client mode: a text prompt or --server talks to `tandem serve` (generate_client.h).
  if (!args.positional().empty() || args.Has("server") || args.Has("stream")) {
    return RunGenerateClient(args);
  }
  RETURN_IF_ERROR(args.CheckKnown({"model", "tokens", "max-new-tokens", "temperature", "top-k",
                                   "top-p", "min-p", "seed", "ignore-eos", "reference-kernels",
                                   "tp", "pp", "stage-layers", "collective", "backend"}));
  ASSIGN_OR_RETURN(LocalModelArgs margs, ParseLocalModelArgs(args));
  model::GenerateOptions options;
  ASSIGN_OR_RETURN(options.max_new_tokens, args.GetInt("max-new-tokens", 16));
  ASSIGN_OR_RETURN(double temperature, args.GetDouble("temperature", 0.0));
  ASSIGN_OR_RETURN(int64_t top_k, args.GetInt("top-k", 0));
  ASSIGN_OR_RETURN(double top_p, args.GetDouble("top-p", 1.0));
  ASSIGN_OR_RETURN(double min_p, args.GetDouble("min-p", 0.0));
  ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 0));
  if (options.max_new_tokens < 1) {
    return absl::InvalidArgumentError("--max-new-tokens must be >= 1");
  }
  if (!std::isfinite(temperature) || temperature < 0) {
    return absl::InvalidArgumentError("--temperature must be finite and >= 0");
  }
  if (top_k < 0) return absl::InvalidArgumentError("--top-k must be >= 0 (0 = off)");
  if (!(top_p > 0 && top_p <= 1)) return absl::InvalidArgumentError("--top-p must be in (0, 1]");
  if (!(min_p >= 0 && min_p <= 1)) return absl::InvalidArgumentError("--min-p must be in [0, 1]");
  options.sampling.temperature = static_cast<float>(temperature);
  options.sampling.top_k = static_cast<int32_t>(top_k);
  options.sampling.top_p = static_cast<float>(top_p);
  options.sampling.min_p = static_cast<float>(min_p);
  options.sampling.seed = static_cast<uint64_t>(seed);
  options.stop_at_eos = !args.Has("ignore-eos");
  const std::string backend = args.GetOr("backend", "cpu");
  RETURN_IF_ERROR(model::CheckBackend(backend));
  ASSIGN_OR_RETURN(std::optional<worker::LocalClusterOptions> distributed,
                   ParseDistributedArgs(args, margs));
  if (backend != "cpu" && distributed) {
    return absl::InvalidArgumentError("--backend cuda runs one GPU: --tp/--pp are CPU-only");
  }
  std::vector<int32_t> ids;
  if (backend == "cuda") {
    ASSIGN_OR_RETURN(ids,
                     model::CudaGenerate(margs.model_dir, margs.options, margs.tokens, options));
  } else if (distributed) {
    ASSIGN_OR_RETURN(auto cluster, worker::LocalCluster::Start(*distributed));
    worker::v1::SamplingParams sp;
    sp.set_temperature(options.sampling.temperature);
    sp.set_top_k(options.sampling.top_k);
    sp.set_top_p(options.sampling.top_p);
    sp.set_min_p(options.sampling.min_p);
    sp.set_seed(options.sampling.seed);
    ASSIGN_OR_RETURN(ids,
                     worker::DistributedGenerate(*cluster, margs.tokens, options.max_new_tokens,
                                                 options.stop_at_eos, sp));
  } else {
    ASSIGN_OR_RETURN(auto model, model::NemotronHModel::Load(margs.model_dir, margs.options));
    ASSIGN_OR_RETURN(ids, model::Generate(*model, margs.tokens, options));
  }
  std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
  return absl::OkStatus();
}

TANDEM_COMMAND(kName, "generate token ids from a prompt with a local model (CPU)",
               "--model DIR --tokens 1,2,3 [options]      (local model)\n"
               "   or: \"text\" [--server ADDR] [options]   (client of `tandem serve`)\n\n"
               "  --model DIR           model directory (local: required, no default)\n"
               "  --tokens IDS          prompt token ids (local: required; client: instead of "
               "text; default none)\n"
               "  --max-new-tokens N    tokens to generate (default 16)\n"
               "  --temperature T       0 is greedy (default 0)\n"
               "  --top-k K             keep the K likeliest tokens, 0 off (default 0)\n"
               "  --top-p P             nucleus mass (default 1)\n"
               "  --min-p P             drop tokens below P x the top probability (default 0)\n"
               "  --seed S              sampling seed (default 0; client: server-chosen)\n"
               "  --ignore-eos          keep going past EOS (default off)\n"
               "  --reference-kernels   local: plain reference kernels (default off)\n"
               "  --tp N, --pp M        local: worker processes per stage, stages (default 1, 1)\n"
               "  --stage-layers A,B    local: layers per stage (default: balanced by cost)\n"
               "  --collective C        local: gloo or ucx (default gloo)\n"
               "  --backend B           local: cpu or cuda (default cpu)\n"
               "  --server ADDR         client: the server (default 127.0.0.1:50051)\n"
               "  --stream              client: print text as it arrives (default off)\n"
               "  --min-new-tokens N    client: tokens before stops apply (default 0)\n"
               "  --stop STR            client: a stop string (default none)\n"
               "  --repetition-penalty R, --presence-penalty P, --frequency-penalty F\n"
               "                        client: penalties (default 1, 0, 0)\n"
               "  --logprobs K          client: top-K logprobs per token (default 0)\n"
               "  --priority N          client: higher is scheduled first (default 0)\n"
               "  --request-id ID       client: the request id (default: server-made)\n"
               "  --timeout-ms MS       client: deadline (default 60000)\n"
               "  --ids                 client: print token ids too (default off)\n"
               "  --api-key KEY         client: API key (default $TANDEM_API_KEY, else none)\n"
               "  --tls                 client: TLS with the system's roots (default off)\n"
               "  --tls-ca PEM          client: TLS trusting this CA (default off)\n"
               "  --tls-cert PEM, --tls-key PEM\n"
               "                        client: certificate for mTLS (default none)",
               {"ignore-eos", "reference-kernels", "stream", "ids", "tls"}, [](const Args& args) {
                 absl::Status s = Run(args);
                 return s.ok() ? 0 : Fail(kName, s);
               });

}  // namespace
}  // namespace tandem::cli
