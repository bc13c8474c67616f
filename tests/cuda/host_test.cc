// Host-side tests of the CUDA backend's logic that need no GPU: the backend registry and the
// launch planning of the kernels.
#include <string>

#include "gtest/gtest.h"
#include "kernels/backend_registry.h"
#include "kernels/cuda/launch_plan.h"

namespace tandem::kernels {
namespace {

TEST(BackendRegistryTest, BuiltinHasAvailableCpuFirst) {
  const std::vector<BackendInfo> list = BackendRegistry::Builtin().List();
  ASSERT_FALSE(list.empty());
  EXPECT_EQ(list[0].name, "cpu");
  EXPECT_TRUE(list[0].available);
  absl::StatusOr<BackendInfo> cpu = BackendRegistry::Builtin().Find("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_EQ(cpu->device_count, 1);
}

TEST(BackendRegistryTest, CudaListedExactlyWhenCompiled) {
  bool listed = false;
  for (const BackendInfo& info : BackendRegistry::Builtin().List()) {
    if (info.name != "cuda") continue;
    listed = true;
    // Available or not, the entry says something (the device name or why it is unavailable).
    EXPECT_FALSE(info.description.empty());
    if (!info.available) EXPECT_EQ(info.device_count, 0);
  }
  EXPECT_EQ(listed, CudaBackendCompiled());
  absl::StatusOr<BackendInfo> cuda = BackendRegistry::Builtin().Find("cuda");
  if (!CudaBackendCompiled()) {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kNotFound);
  } else if (!cuda.ok()) {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(cuda.status().message().find("unavailable"), std::string::npos);
  }
}

TEST(BackendRegistryTest, RegisterRejectsDuplicatesAndEmpty) {
  BackendRegistry r;
  ASSERT_TRUE(r.Register("fake", [] { return BackendInfo{"", true, 2, "two fakes"}; }).ok());
  EXPECT_EQ(r.Register("fake", [] { return BackendInfo{}; }).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.Register("", [] { return BackendInfo{}; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Register("null", nullptr).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(r.Register("down", [] { return BackendInfo{"", false, 0, "cable cut"}; }).ok());
  absl::StatusOr<BackendInfo> fake = r.Find("fake");
  ASSERT_TRUE(fake.ok());
  EXPECT_EQ(fake->name, "fake");  // the registered name wins over the probe's
  EXPECT_EQ(fake->device_count, 2);
  absl::StatusOr<BackendInfo> down = r.Find("down");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(down.status().message().find("cable cut"), std::string::npos);
  EXPECT_EQ(r.Find("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.AvailableNames(), std::vector<std::string>{"fake"});
}

}  // namespace
}  // namespace tandem::kernels

namespace tandem::kernels::cuda {
namespace {

TEST(LaunchPlanTest, SsdScanGridAndSharedMemory) {
  absl::StatusOr<SsdLaunchPlan> plan = PlanSsdScan(3, 128, 64, 8, 128, 227 << 10);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->grid_x, 3);
  EXPECT_EQ(plan->grid_y, 128);
  EXPECT_EQ(plan->grid_z, 2);  // 64 rows in tiles of 32
  const int64_t L = SsdChunkSize(), P = SsdHeadDimTile(), N = 128;
  EXPECT_EQ(plan->shared_bytes, 4 * (2 * L + 2 * L * (N + 1) + L * P + L * L + P * (N + 1)));
  // A head_dim tail rounds the tile count up.
  EXPECT_EQ(PlanSsdScan(1, 4, 33, 2, 16, 1 << 20)->grid_z, 2);
  // Errors name the problem.
  EXPECT_EQ(PlanSsdScan(1, 6, 64, 4, 128, 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanSsdScan(1, 4, 0, 4, 128, 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status big = PlanSsdScan(1, 4, 64, 4, 4096, 227 << 10).status();
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.message().find("shared memory"), std::string::npos);
}

TEST(LaunchPlanTest, StateUpdateVectorisesWhenStateSizeAllows) {
  absl::StatusOr<StateUpdatePlan> plan = PlanStateUpdate(32, 128, 64, 8, 128);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->vectorized);
  EXPECT_EQ(plan->rows_per_block, 16);
  EXPECT_EQ(plan->grid_x, 32);
  EXPECT_EQ(plan->grid_y, 128);
  EXPECT_EQ(plan->grid_z, 4);
  absl::StatusOr<StateUpdatePlan> odd = PlanStateUpdate(1, 3, 5, 1, 7);
  ASSERT_TRUE(odd.ok());
  EXPECT_FALSE(odd->vectorized);
  EXPECT_EQ(odd->rows_per_block, 8);
  EXPECT_EQ(odd->grid_z, 1);
  EXPECT_FALSE(PlanStateUpdate(1, 3, 5, 2, 8).ok());  // heads not divisible by groups
}

TEST(LaunchPlanTest, AttentionPicksDecodeOrPrefill) {
  absl::StatusOr<AttentionPlan> dec = PlanAttention(64, 32, 8, 128, 1, 227 << 10);
  ASSERT_TRUE(dec.ok());
  EXPECT_TRUE(dec->decode);
  EXPECT_EQ(dec->grid_x, 1);
  EXPECT_EQ(dec->shared_bytes, (4 * 128 + 8) * 4);
  absl::StatusOr<AttentionPlan> pre = PlanAttention(2, 32, 8, 128, 33, 227 << 10);
  ASSERT_TRUE(pre.ok());
  EXPECT_FALSE(pre->decode);
  EXPECT_EQ(pre->grid_x, 3);  // 33 rows in tiles of 16
  EXPECT_EQ(pre->grid_y, 32);
  EXPECT_EQ(pre->grid_z, 2);
  const int64_t D = 128, q = pre->q_tile, k = pre->k_tile;
  EXPECT_EQ(pre->shared_bytes, 4 * (q * D + k * (2 * D + 1) + q * k + q * D + 3 * q));
  EXPECT_FALSE(PlanAttention(1, 6, 4, 64, 2, 1 << 20).ok());     // GQA needs q % kv == 0
  EXPECT_FALSE(PlanAttention(1, 4, 4, 512, 2, 1 << 20).ok());    // head_dim > 256
  EXPECT_FALSE(PlanAttention(1, 4, 4, 256, 64, 16 << 10).ok());  // shared memory too small
}

TEST(LaunchPlanTest, RowThreadsAreWarpMultiplesWithinLimits) {
  EXPECT_EQ(RowThreads(1, 4), 32);
  EXPECT_EQ(RowThreads(4096, 8), 512);
  EXPECT_EQ(RowThreads(4097, 8), 544);
  EXPECT_EQ(RowThreads(1 << 20, 1), 1024);
  EXPECT_EQ(RowThreads(0, 0), 32);
  EXPECT_EQ(CeilDiv(33, 16), 3);
}

}  // namespace
}  // namespace tandem::kernels::cuda
