#include "comm/gloo_communicator.h"

#include <csignal>

#include "gtest/gtest.h"
#include "tests/comm/multiprocess.h"

namespace tandem::comm::testing {
namespace {

class GlooTest : public MultiProcessTest, public ::testing::WithParamInterface<int> {};

TEST_P(GlooTest, CollectivesMatchReference) {
  ExpectAllSucceed(SpawnRanks("gloo_collectives", GetParam()), absl::Seconds(40));
}

TEST_P(GlooTest, KilledPeerFailsSurvivorsWithinDeadline) {
  const int size = GetParam();
  std::vector<pid_t> pids = SpawnRanks("gloo_kill", size);
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(absl::StrCat("ready/", r));
  ASSERT_TRUE(store_->Wait(keys, absl::Seconds(20)).ok());
  absl::SleepFor(absl::Milliseconds(200));  // the survivors are inside the all-reduce now
  const absl::Time killed = absl::Now();
  procs_.Kill(pids.back(), SIGKILL);
  pids.pop_back();
  ExpectAllSucceed(pids, absl::Seconds(15));
  EXPECT_LT(absl::Now() - killed, absl::Seconds(15));
  for (int r = 0; r + 1 < size; ++r) {
    int code = 0;
    int64_t elapsed_ms = 0;
    ReadResult(r, &code, &elapsed_ms);
    EXPECT_TRUE(code == static_cast<int>(absl::StatusCode::kUnavailable) ||
                code == static_cast<int>(absl::StatusCode::kDeadlineExceeded))
        << "rank " << r << " code " << code;
    EXPECT_LT(elapsed_ms, 15000) << "rank " << r;
  }
}

TEST_P(GlooTest, StuckPeerIsDeadlineExceeded) {
  const int size = GetParam();
  std::vector<pid_t> pids = SpawnRanks("gloo_stuck", size);
  pids.pop_back();  // the stuck rank never exits by itself; teardown kills it
  ExpectAllSucceed(pids, absl::Seconds(15));
  int deadline_exceeded = 0;
  for (int r = 0; r + 1 < size; ++r) {
    int code = 0;
    int64_t elapsed_ms = 0;
    ReadResult(r, &code, &elapsed_ms);
    // The first rank to time out closes its connections, so others may see UNAVAILABLE.
    EXPECT_TRUE(code == static_cast<int>(absl::StatusCode::kDeadlineExceeded) ||
                code == static_cast<int>(absl::StatusCode::kUnavailable))
        << "rank " << r << " code " << code;
    deadline_exceeded += code == static_cast<int>(absl::StatusCode::kDeadlineExceeded);
    EXPECT_LT(elapsed_ms, 15000) << "rank " << r;
  }
  EXPECT_GE(deadline_exceeded, 1);
}

// Abort (a worker whose step failed elsewhere) closes the connections: ranks waiting for it in a
// collective fail UNAVAILABLE at once instead of at their 20 s deadline.
TEST_P(GlooTest, AbortFailsThePeersCollectivesAtOnce) {
  const int size = GetParam();
  std::vector<pid_t> pids = SpawnRanks("gloo_abort", size);
  pids.pop_back();  // the aborting rank parks; teardown kills it
  ExpectAllSucceed(pids, absl::Seconds(15));
  for (int r = 0; r + 1 < size; ++r) {
    int code = 0;
    int64_t elapsed_ms = 0;
    ReadResult(r, &code, &elapsed_ms);
    EXPECT_EQ(code, static_cast<int>(absl::StatusCode::kUnavailable)) << "rank " << r;
    EXPECT_LT(elapsed_ms, 5000) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, GlooTest, ::testing::Values(2, 4),
                         [](const auto& info) { return absl::StrCat(info.param, "Ranks"); });

TEST(GlooCommunicator, SingleRankIsLocal) {
  auto server = RendezvousServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  TcpStoreClient store((*server)->address());
  GlooOptions options;
  options.store = &store;
  auto comm = GlooCommunicator::Create(options);
  ASSERT_TRUE(comm.ok()) << comm.status();
  std::vector<float> data = {1.5f, -2.0f};
  ASSERT_TRUE((*comm)->AllReduceSum(data.data(), data.size()).ok());
  EXPECT_EQ(data, (std::vector<float>{1.5f, -2.0f}));
  char out[3] = {};
  ASSERT_TRUE((*comm)->AllGather("abc", 3, out).ok());
  EXPECT_EQ(std::string(out, 3), "abc");
  EXPECT_TRUE((*comm)->Barrier().ok());
  EXPECT_EQ((*comm)->Broadcast(out, 3, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GlooCommunicator, RejectsBadOptions) {
  GlooOptions options;
  options.rank = 2;
  options.size = 2;
  EXPECT_EQ(GlooCommunicator::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.rank = 0;
  EXPECT_EQ(GlooCommunicator::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);  // no store
}

TEST(GlooCommunicator, MissingPeerIsDeadlineExceeded) {
  auto server = RendezvousServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  TcpStoreClient store((*server)->address());
  GlooOptions options;
  options.rank = 0;
  options.size = 2;
  options.store = &store;
  options.timeout = absl::Milliseconds(500);
  const absl::Time start = absl::Now();
  auto comm = GlooCommunicator::Create(options);
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace tandem::comm::testing
