// The CPUs this process may use: the affinity mask, capped by the cgroup CPU quota (a container's
// CPU limit: cgroup v2 /sys/fs/cgroup/cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us),
// rounded up, at least 1. Thread pools size to this instead of the host's cores. Thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace tandem::core {

int AvailableCpus();

// The CPU limit in a cgroup v2 cpu.max text ("max 100000" or "<quota> <period>"), rounded up;
// nullopt for no limit or text that does not parse.
std::optional<int> CpusFromCpuMax(std::string_view text);
// The same for cgroup v1's cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us.
std::optional<int> CpusFromCfs(std::string_view quota_us, std::string_view period_us);

}  // namespace tandem::core
