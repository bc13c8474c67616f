// Shared helpers of the worker tests: tiny model directories (written once per process), the
// single-process reference, a watchdog that bounds the whole binary (children die with it through
// PR_SET_PDEATHSIG), and cluster options pointing at the built `tandem`.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tiny_model.h"
#include "gtest/gtest.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "worker/distributed_runner.h"
#include "worker/local_cluster.h"

namespace tandem::worker {

inline std::string TestRoot() {
  static const std::string root = [] {
    const std::string dir = absl::StrCat("/tmp/tandem-worker-test-", getpid());
    std::filesystem::create_directories(dir);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(absl::StrCat("/tmp/tandem-worker-test-", getpid()), ec);
    });
    alarm(600);  // the whole binary; SIGALRM kills it and, through PDEATHSIG, its workers
    return dir;
  }();
  return root;
}

// A tiny model directory for (preset, dtype), created on first use.
inline std::string TinyModelDir(const std::string& preset, core::DType dtype) {
  const std::string dir =
      absl::StrCat(TestRoot(), "/", preset, dtype == core::DType::kF32 ? "-f32" : "-bf16");
  if (!std::filesystem::exists(dir + "/config.json")) {
    core::TinyModelOptions o;
    o.preset = preset;
    o.dtype = dtype;
    o.seed = 7;
    absl::Status s = core::WriteTinyModel(o, dir);
    EXPECT_TRUE(s.ok()) << s;
  }
  return dir;
}

inline LocalClusterOptions ClusterOptions(const std::string& model_dir, int tp, int pp) {
  LocalClusterOptions o;
  o.tandem_binary = std::string(TANDEM_BINARY_DIR) + "/bin/tandem";
  o.model_dir = model_dir;
  o.tp = tp;
  o.pp = pp;
  o.num_slots = 4;
  o.num_blocks = 64;
  o.step_timeout = absl::Seconds(60);
  o.comm_timeout = absl::Seconds(20);
  return o;
}

inline std::vector<int32_t> RandomPrompt(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> p;
  uint32_t x = seed * 2654435761u + 1;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    p.push_back(static_cast<int32_t>((x >> 8) % vocab));
  }
  return p;
}

// Max |a - b| / max |a|.
inline double RelMaxErr(const float* a, const float* b, int64_t n) {
  double amax = 0, d = 0;
  for (int64_t i = 0; i < n; ++i) {
    amax = std::max(amax, static_cast<double>(std::abs(a[i])));
    d = std::max(d, static_cast<double>(std::abs(a[i] - b[i])));
  }
  return amax > 0 ? d / amax : d;
}

}  // namespace tandem::worker
