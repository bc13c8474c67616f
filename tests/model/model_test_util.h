// Helpers for the model tests: tiny checkpoints in temporary directories, fresh seeds, .npy
// reading and logits comparison.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "core/tiny_model.h"
#include "gtest/gtest.h"

namespace tandem::model::testing {

// A directory removed when the object dies.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            absl::StrCat("tandem_model_test_", getpid(), "_", counter++);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::string WriteTiny(const TempDir& dir, const std::string& preset, uint64_t seed,
                             core::DType dtype, int shards = 1) {
  core::TinyModelOptions options;
  options.preset = preset;
  options.seed = seed;
  options.dtype = dtype;
  options.num_shards = shards;
  const std::string path =
      dir.Sub(absl::StrCat(preset, "-", core::DTypeName(dtype), "-", seed, "-", shards));
  const absl::Status s = core::WriteTinyModel(options, path);
  EXPECT_TRUE(s.ok()) << s;
  return path;
}

// A fresh seed per run, printed so a failure can be reproduced (TANDEM_TEST_SEED overrides).
inline uint64_t FreshSeed() {
  if (const char* env = std::getenv("TANDEM_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  const uint64_t seed = std::random_device{}();
  std::fprintf(stderr, "[ seed ] TANDEM_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  return seed;
}

inline std::vector<int32_t> RandomTokens(std::mt19937_64& rng, int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

// max |a - b| / max |b| over `n` values.
inline double RelMaxError(const float* a, const float* b, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

// Reads a little-endian float32 C-order 2-D .npy file.
inline core::Tensor ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  char magic[8];
  in.read(magic, 8);
  uint16_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 2);
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  EXPECT_NE(header.find("'<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  const size_t open = header.find("'shape': (");
  int64_t rows = 0, cols = 0;
  std::sscanf(header.c_str() + open, "'shape': (%ld, %ld)", &rows, &cols);
  core::Tensor t = core::Tensor::Empty(core::DType::kF32, {rows, cols});
  in.read(static_cast<char*>(t.raw()), t.nbytes());
  EXPECT_TRUE(in.good()) << path;
  return t;
}

}  // namespace tandem::model::testing
