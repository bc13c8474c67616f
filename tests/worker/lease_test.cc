// WorkerLease (worker/lease.h): who owns a worker, at which epoch, until when; and LeaseKeeper
// (worker/lease_keeper.h), the coordinator's heartbeat, against a real worker process.
#include "worker/lease.h"

#include <atomic>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/worker/worker_test_util.h"
#include "worker/lease_keeper.h"
#include "worker/local_cluster.h"

namespace tandem::worker {
namespace {

using ::testing::HasSubstr;

TEST(WorkerLeaseTest, ClaimRenewTakeoverAndStaleEpochs) {
  WorkerLease lease(absl::Seconds(2));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(lease.Check("a", 1, t0).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(lease.Claim("a", 1, t0).ok());
  EXPECT_TRUE(lease.Claim("a", 1, t0).ok());  // idempotent
  EXPECT_TRUE(lease.Check("a", 1, t0 + absl::Seconds(1)).ok());
  // Another coordinator while a's lease lives (renewed at t0 + 1 s, so until t0 + 3 s).
  absl::Status refused = lease.Claim("b", 2, t0 + absl::Milliseconds(2900));
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("owned by coordinator 'a' at epoch 1"));
  EXPECT_EQ(lease.Check("b", 1, t0 + absl::Seconds(2)).code(),
            absl::StatusCode::kFailedPrecondition);
  // After the lease lapsed: the new epoch must be greater.
  EXPECT_THAT(std::string(lease.Claim("b", 1, t0 + absl::Seconds(4)).message()),
              HasSubstr("not greater than the current epoch 1"));
  ASSERT_TRUE(lease.Claim("b", 2, t0 + absl::Seconds(4)).ok());
  const WorkerLease::State s = lease.Get(t0 + absl::Seconds(5));
  EXPECT_EQ(s.owner, "b");
  EXPECT_EQ(s.epoch, 2u);
  EXPECT_EQ(s.remaining, absl::Seconds(1));
  // The old owner, and stale epochs of the new one, are refused.
  EXPECT_EQ(lease.Check("a", 1, t0 + absl::Seconds(5)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(lease.Check("b", 1, t0 + absl::Seconds(5)).message()),
              HasSubstr("stale epoch 1"));
  // A lapsed lease still admits its owner until someone else claims.
  EXPECT_TRUE(lease.Check("b", 2, t0 + absl::Seconds(60)).ok());
  // The owner may move itself to a newer epoch at any time.
  EXPECT_TRUE(lease.Claim("b", 5, t0 + absl::Seconds(60)).ok());
  EXPECT_EQ(lease.Get(t0 + absl::Seconds(60)).epoch, 5u);
  EXPECT_EQ(lease.Claim("", 9, t0).code(), absl::StatusCode::kInvalidArgument);
}

// The keeper renews the owner's lease on every beat and reports each failed beat (here: a stale
// epoch, as after a takeover) through its callback, going on beating.
TEST(LeaseKeeperTest, RenewsAndReportsFailedBeats) {
  auto cluster = LocalCluster::Start(ClusterOptions(TinyModelDir("tiny", core::DType::kF32), 1, 1));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto stub = ::tandem::worker::v1::Worker::NewStub(
      grpc::CreateChannel((*cluster)->address(0), grpc::InsecureChannelCredentials()));
  std::atomic<int> failures{0};
  {
    LeaseKeeper keeper({stub.get()}, (*cluster)->credentials(), absl::Milliseconds(20),
                       [&](int, const absl::Status&, absl::Duration) { ++failures; });
    for (int i = 0; i < 500 && keeper.beats() < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GE(keeper.beats(), 3);
    EXPECT_GT(keeper.last_renewed(0), absl::Now() - absl::Seconds(5));
  }
  EXPECT_EQ(failures.load(), 0);

  auth::GroupCredentials stale = (*cluster)->credentials();
  stale.epoch -= 1;
  absl::Status last;
  absl::Mutex mu;
  {
    LeaseKeeper keeper({stub.get()}, stale, absl::Milliseconds(20),
                       [&](int rank, const absl::Status& s, absl::Duration) {
                         EXPECT_EQ(rank, 0);
                         absl::MutexLock lock(&mu);
                         last = s;
                         ++failures;
                       });
    for (int i = 0; i < 500 && failures.load() < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(keeper.last_renewed(0), absl::InfinitePast());
  }
  EXPECT_GE(failures.load(), 3);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(last.code(), absl::StatusCode::kFailedPrecondition) << last;
  EXPECT_THAT(std::string(last.message()), HasSubstr("stale epoch"));
}

}  // namespace
}  // namespace tandem::worker
