#include "core/cpu_quota.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tandem::core {
namespace {

std::optional<int> Ratio(int64_t quota, int64_t period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<int>(std::max<int64_t>(1, (quota + period - 1) / period));
}

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<int> CpusFromCpuMax(std::string_view text) {
  std::vector<std::string> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())), ' ',
                     absl::SkipEmpty());
  if (parts.size() != 2 || parts[0] == "max") return std::nullopt;
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(parts[0], &quota) || !absl::SimpleAtoi(parts[1], &period)) {
    return std::nullopt;
  }
  return Ratio(quota, period);
}

std::optional<int> CpusFromCfs(std::string_view quota_us, std::string_view period_us) {
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(
          absl::StripAsciiWhitespace(absl::string_view(quota_us.data(), quota_us.size())),
          &quota) ||
      !absl::SimpleAtoi(
          absl::StripAsciiWhitespace(absl::string_view(period_us.data(), period_us.size())),
          &period)) {
    return std::nullopt;
  }
  return Ratio(quota, period);
}

int AvailableCpus() {
  int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  std::optional<int> quota = CpusFromCpuMax(ReadSmallFile("/sys/fs/cgroup/cpu.max"));
  if (!quota) {
    quota = CpusFromCfs(ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                        ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
  }
  if (quota) cpus = std::min(cpus, *quota);
  return cpus;
}

}  // namespace tandem::core
