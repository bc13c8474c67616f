// Helpers for tests that run the real `tandem` executable.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem::cli::testing {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout, then stderr
};

// Runs a shell command line: its exit code (-1 when it did not exit normally) and stdout.
inline Result RunCommand(const std::string& command) {
  Result r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline Result Tandem(const std::string& args, bool merge_stderr = false) {
  return RunCommand(std::string(TANDEM_BINARY_DIR) + "/bin/tandem " + args +
                    (merge_stderr ? " 2>&1" : " 2>/dev/null"));
}

inline Json InspectJson(const std::string& args) {
  const Result r = Tandem("inspect --json " + args);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << Tandem("inspect " + args, true).output;
  if (r.exit_code != 0) return Json::object();
  return Json::parse(r.output);
}

inline std::string Config(const std::string& name) {
  return std::string(TANDEM_SOURCE_DIR) + "/configs/" + name;
}

// Directories the tests created; removed when the test program ends.
inline std::vector<fs::path>& CreatedDirs() {
  static auto* dirs = new std::vector<fs::path>();
  return *dirs;
}

class RemoveCreatedDirs : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const fs::path& dir : CreatedDirs()) fs::remove_all(dir);
  }
};
inline ::testing::Environment* const kRemoveCreatedDirs =
    ::testing::AddGlobalTestEnvironment(new RemoveCreatedDirs);

inline std::string FreshDir(const std::string& name) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("cli_test_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(dir);
  CreatedDirs().push_back(dir);
  return dir.string();
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace tandem::cli::testing
