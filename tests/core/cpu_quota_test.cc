#include "core/cpu_quota.h"

#include <thread>

#include "core/thread_pool.h"
#include "gtest/gtest.h"

namespace tandem::core {
namespace {

TEST(CpuQuotaTest, ParsesCgroupV2CpuMax) {
  EXPECT_EQ(CpusFromCpuMax("max 100000\n"), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax("200000 100000\n"), 2);
  EXPECT_EQ(CpusFromCpuMax("150000 100000"), 2);  // 1.5 CPUs: rounded up
  EXPECT_EQ(CpusFromCpuMax("50000 100000"), 1);
  EXPECT_EQ(CpusFromCpuMax(""), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax("garbage"), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax("0 100000"), std::nullopt);
}

TEST(CpuQuotaTest, ParsesCgroupV1Cfs) {
  EXPECT_EQ(CpusFromCfs("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(CpusFromCfs("400000\n", "100000\n"), 4);
  EXPECT_EQ(CpusFromCfs("", ""), std::nullopt);
}

TEST(CpuQuotaTest, AvailableCpusIsWithinTheHardware) {
  const int n = AvailableCpus();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_EQ(ThreadPool(0).size(), n);
}

}  // namespace
}  // namespace tandem::core
