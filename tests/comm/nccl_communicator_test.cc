// GPU tests of NcclCommunicator (label gpu): skipped, saying why, where no GPU is usable.
#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <random>

#include "gtest/gtest.h"
#include "tests/comm/multiprocess.h"

namespace tandem::comm::testing {
namespace {

// Skips the test unless a CUDA device is usable.
#define SKIP_WITHOUT_GPU()                                                            \
  do {                                                                                \
    absl::StatusOr<int> count = CudaDeviceCount();                                    \
    if (!count.ok()) GTEST_SKIP() << "no GPU: " << count.status();                    \
    if (*count == 0) GTEST_SKIP() << "no GPU: cudaGetDeviceCount returned 0 devices"; \
  } while (false)

TEST(NcclCommunicator, SingleRankCollectives) {
  SKIP_WITHOUT_GPU();
  auto id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  NcclOptions options;
  options.unique_id = *id;
  options.timeout = absl::Seconds(20);
  auto comm = NcclCommunicator::Create(options);
  ASSERT_TRUE(comm.ok()) << comm.status();

  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const size_t n = 100000;
  std::vector<float> host(n);
  for (float& x : host) x = dist(rng);
  float* device = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&device), 2 * n * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(device, host.data(), n * sizeof(float), cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_TRUE((*comm)->AllReduceSum(device, n).ok());
  ASSERT_TRUE((*comm)->AllGather(device, n * sizeof(float), device + n).ok());
  ASSERT_TRUE((*comm)->Broadcast(device, n * sizeof(float), 0).ok());
  ASSERT_TRUE((*comm)->Barrier().ok());
  std::vector<float> back(2 * n, -7.0f);
  ASSERT_EQ(cudaMemcpy(back.data(), device, 2 * n * sizeof(float), cudaMemcpyDeviceToHost),
            cudaSuccess);
  cudaFree(device);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(back[i], host[i]) << i;
    ASSERT_EQ(back[n + i], host[i]) << i;
  }
  EXPECT_EQ((*comm)->Broadcast(device, 4, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(NcclCommunicator, RejectsBadUniqueId) {
  NcclOptions options;
  options.unique_id = "short";
  EXPECT_EQ(NcclCommunicator::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

using NcclMultiProcessTest = MultiProcessTest;

TEST_F(NcclMultiProcessTest, TwoProcessesOnOneGpu) {
  SKIP_WITHOUT_GPU();
  std::vector<pid_t> pids = SpawnRanks("nccl_two_ranks_one_gpu", 2);
  ExpectAllSucceed(pids, absl::Seconds(45));
  int codes[2] = {};
  for (int r = 0; r < 2; ++r) {
    int64_t elapsed_ms = 0;
    ReadResult(r, &codes[r], &elapsed_ms);
    EXPECT_LT(elapsed_ms, 30000) << "rank " << r;
  }
  // Either both succeeded (and checked the sums), or NCCL refused the layout on both ranks.
  EXPECT_EQ(codes[0] == 0, codes[1] == 0) << codes[0] << " vs " << codes[1];
  if (codes[0] != 0) std::cerr << "NCCL refused two ranks on one GPU (code " << codes[0] << ")\n";
}

}  // namespace
}  // namespace tandem::comm::testing
