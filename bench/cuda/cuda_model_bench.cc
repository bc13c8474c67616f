// End-to-end step timing of the CUDA model (model/cuda/cuda_model.h) with synthetic weights of
// real shapes: decode steps at several batch sizes and one long prefill. A plain executable (the
// step itself synchronises once, so host wall-clock time around Step is the step latency, logits
// copy to the host included); median of --reps steps after warm-up; JSON via --out.
//   cuda_model_bench --synthetic configs/nemotron-h-8b|tiny [--layers N] [--dtype bf16|f32]
//                    [--batches 1,16,64,256] [--context 1024] [--prefill 8192] [--reps 5]
//                    [--out PATH]
// Decode sequences start at position --context over zero-filled KV blocks (attention cost
// depends on the length, not on the values), so no prefill is needed to time them.
// STATUS: compiled, never run on a GPU — needs device validation.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/model_config.h"
#include "core/tiny_model.h"
#include "kernels/cuda/device.h"
#include "model/cuda/cuda_model.h"

namespace tandem::model::cuda {
namespace {

[[noreturn]] void Die(const absl::Status& s, const char* what) {
  std::fprintf(stderr, "cuda_model_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

struct Flags {
  std::string synthetic = "configs/nemotron-h-8b";
  int64_t layers = 0;
  std::string dtype = "bf16";
  std::vector<int64_t> batches = {1, 16, 64, 256};
  int64_t context = 1024;
  int64_t prefill = 8192;
  int reps = 5;
  std::string out;
};

Flags Parse(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&](const char* name) -> const char* {
      const std::string prefix = absl::StrCat("--", name, "=");
      if (a.rfind(prefix, 0) == 0) return argv[i] + prefix.size();
      if (a == absl::StrCat("--", name) && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    const auto number = [&](const char* v) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(v, &n)) {
        std::fprintf(stderr, "cuda_model_bench: bad number in %s\n", a.c_str());
        std::exit(2);
      }
      return n;
    };
    if (const char* v = value("synthetic")) {
      f.synthetic = v;
    } else if (const char* v = value("layers")) {
      f.layers = number(v);
    } else if (const char* v = value("dtype")) {
      f.dtype = v;
    } else if (const char* v = value("batches")) {
      f.batches.clear();
      for (absl::string_view part : absl::StrSplit(v, ',')) {
        f.batches.push_back(number(std::string(part).c_str()));
      }
    } else if (const char* v = value("context")) {
      f.context = number(v);
    } else if (const char* v = value("prefill")) {
      f.prefill = number(v);
    } else if (const char* v = value("reps")) {
      f.reps = static_cast<int>(number(v));
    } else if (const char* v = value("out")) {
      f.out = v;
    } else {
      std::fprintf(stderr, "cuda_model_bench: unknown argument %s\n", a.c_str());
      std::exit(2);
    }
  }
  return f;
}

// A tiny preset name or a directory (or file) holding config.json.
core::ModelConfig LoadConfig(const std::string& what) {
  absl::StatusOr<core::ModelConfig> c = core::TinyPreset(what);
  if (c.ok()) return *c;
  std::filesystem::path p(what);
  if (std::filesystem::is_directory(p)) p /= "config.json";
  c = core::ModelConfig::FromFile(p.string());
  if (!c.ok()) Die(c.status(), "config");
  return *c;
}

double MedianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Milliseconds of each of `reps` steps after two warm-up steps.
std::vector<double> TimeSteps(CudaNemotronHModel& model, const StepPlan& plan, int reps) {
  std::vector<double> ms;
  for (int i = 0; i < reps + 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<StepLogits> out = model.Step(plan);
    const auto t1 = std::chrono::steady_clock::now();
    if (!out.ok()) Die(out.status(), "step");
    if (i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return ms;
}

int Main(int argc, char** argv) {
  const Flags f = Parse(argc, argv);
  const core::ModelConfig full = LoadConfig(f.synthetic);
  SyntheticOptions synthetic;
  synthetic.dtype = f.dtype == "f32" ? core::DType::kF32 : core::DType::kBF16;
  synthetic.num_layers = f.layers;
  absl::StatusOr<kernels::cuda::DeviceInfo> dev = kernels::cuda::GetDeviceInfo(0);
  if (!dev.ok()) Die(dev.status(), "device");
  std::printf("device: %s, %d SMs, %.1f GiB\n", dev->name.c_str(), dev->multiprocessors,
              dev->global_memory_bytes / double(1 << 30));
  const auto t0 = std::chrono::steady_clock::now();
  auto model = CudaNemotronHModel::LoadSynthetic(full, synthetic);
  if (!model.ok()) Die(model.status(), "load");
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const core::ModelConfig& c = (*model)->config();
  std::printf("model: %s, %ld of %ld layers (%s), %s, weights %.2f GiB, loaded in %.1f s\n",
              f.synthetic.c_str(), static_cast<long>(c.num_hidden_layers),
              static_cast<long>(full.num_hidden_layers), c.hybrid_override_pattern.c_str(),
              f.dtype.c_str(), (*model)->weight_bytes() / double(1 << 30), load_s);

  const int64_t max_batch = *std::max_element(f.batches.begin(), f.batches.end());
  const int64_t bs = 16;
  const int64_t decode_blocks = (f.context + 1 + bs - 1) / bs;
  const int64_t prefill_blocks = (f.prefill + bs - 1) / bs;
  StateCapacity cap;
  cap.block_size = bs;
  cap.num_slots = std::max<int64_t>(max_batch, 1);
  cap.num_blocks = std::max(max_batch * decode_blocks, prefill_blocks);
  if (absl::Status s = (*model)->AllocateState(cap); !s.ok()) Die(s, "state");
  std::printf("state: %ld slots, %ld blocks, %.2f GiB\n", static_cast<long>(cap.num_slots),
              static_cast<long>(cap.num_blocks), (*model)->state_bytes() / double(1 << 30));

  std::vector<std::string> json_rows;
  std::printf("%-24s %10s %14s\n", "case", "ms/step", "tokens/s");
  for (int64_t batch : f.batches) {
    StepPlan plan;
    for (int64_t s = 0; s < batch; ++s) {
      SequenceStep q;
      q.slot = static_cast<int32_t>(s);
      for (int64_t b = 0; b < decode_blocks; ++b) {
        q.block_table.push_back(static_cast<int32_t>(s * decode_blocks + b));
      }
      q.start_pos = f.context;
      q.token_ids = {static_cast<int32_t>((s * 7919 + 13) % c.vocab_size)};
      q.logits = LogitsRequest::kLast;
      plan.sequences.push_back(std::move(q));
    }
    const double ms = MedianMs(TimeSteps(**model, plan, f.reps));
    const double tps = batch / (ms / 1e3);
    std::printf("%-24s %10.3f %14.1f\n", absl::StrCat("decode b=", batch).c_str(), ms, tps);
    json_rows.push_back(absl::StrCat("{\"case\": \"decode\", \"batch\": ", batch,
                                     ", \"context\": ", f.context, ", \"ms_per_step\": ", ms,
                                     ", \"tokens_per_s\": ", tps, "}"));
  }
  if (f.prefill > 0) {
    StepPlan plan;
    SequenceStep q;
    q.slot = 0;
    for (int64_t b = 0; b < prefill_blocks; ++b) q.block_table.push_back(static_cast<int32_t>(b));
    q.start_pos = 0;
    for (int64_t t = 0; t < f.prefill; ++t) {
      q.token_ids.push_back(static_cast<int32_t>((t * 104729 + 7) % c.vocab_size));
    }
    q.logits = LogitsRequest::kLast;
    plan.sequences.push_back(std::move(q));
    const double ms = MedianMs(TimeSteps(**model, plan, std::max(1, f.reps / 2)));
    const double tps = f.prefill / (ms / 1e3);
    std::printf("%-24s %10.3f %14.1f\n", absl::StrCat("prefill ", f.prefill).c_str(), ms, tps);
    json_rows.push_back(absl::StrCat("{\"case\": \"prefill\", \"tokens\": ", f.prefill,
                                     ", \"ms_per_step\": ", ms, ", \"tokens_per_s\": ", tps, "}"));
  }
  if (!f.out.empty()) {
    std::ofstream out(f.out);
    out << "{\"machine\": \"" << dev->name << "\", \"model\": \"" << f.synthetic
        << "\", \"layers\": " << c.num_hidden_layers
        << ", \"of_layers\": " << full.num_hidden_layers << ", \"pattern\": \""
        << c.hybrid_override_pattern << "\", \"dtype\": \"" << f.dtype
        << "\", \"weight_bytes\": " << (*model)->weight_bytes() << ", \"results\": [\n  "
        << absl::StrJoin(json_rows, ",\n  ") << "\n]}\n";
    if (!out) {
      std::fprintf(stderr, "cuda_model_bench: cannot write %s\n", f.out.c_str());
      return 1;
    }
    std::printf("wrote %s\n", f.out.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace tandem::model::cuda

int main(int argc, char** argv) { return tandem::model::cuda::Main(argc, argv); }
