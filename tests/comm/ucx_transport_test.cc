#include "comm/ucx_transport.h"

#include <csignal>

#include "gtest/gtest.h"
#include "tests/comm/multiprocess.h"

namespace tandem::comm::testing {
namespace {

// Parameter: whether UCX may use shared memory (otherwise tcp only, the "_tcp" peer modes).
class UcxTest : public MultiProcessTest, public ::testing::WithParamInterface<bool> {
 protected:
  std::string Mode(const std::string& mode) { return GetParam() ? mode : mode + "_tcp"; }
};

TEST_P(UcxTest, SendRecvSizesMatch) {
  ExpectAllSucceed(SpawnRanks(Mode("ucx_sendrecv"), 2), absl::Seconds(40));
}

TEST_P(UcxTest, KilledPeerFailsPendingRecvWithinDeadline) {
  std::vector<pid_t> pids = SpawnRanks(Mode("ucx_kill"), 2);
  ASSERT_TRUE(store_->Wait({"ready/0", "ready/1"}, absl::Seconds(20)).ok());
  absl::SleepFor(absl::Milliseconds(200));  // rank 0 is inside Recv now
  const absl::Time killed = absl::Now();
  procs_.Kill(pids[1], SIGKILL);
  ExpectAllSucceed({pids[0]}, absl::Seconds(15));
  EXPECT_LT(absl::Now() - killed, absl::Seconds(15));
  int code = 0;
  int64_t elapsed_ms = 0;
  ReadResult(0, &code, &elapsed_ms);
  EXPECT_EQ(code, static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_LT(elapsed_ms, 15000);
}

// Abort from another thread (a worker whose old group is being rebuilt) fails a Recv that waits on
// a live peer that will never send, at once instead of at its 30 s timeout.
TEST_P(UcxTest, AbortFromAnotherThreadFailsAPendingRecvAtOnce) {
  std::vector<pid_t> pids = SpawnRanks(Mode("ucx_abort_interrupt"), 2);
  ExpectAllSucceed({pids[0]}, absl::Seconds(20));
  int code = 0;
  int64_t elapsed_ms = 0;
  ReadResult(0, &code, &elapsed_ms);
  EXPECT_EQ(code, static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_LT(elapsed_ms, 5000);
}

TEST_P(UcxTest, SendTimeoutAndKilledReceiverFailSends) {
  std::vector<pid_t> pids = SpawnRanks(Mode("ucx_send_failures"), 3);
  ASSERT_TRUE(store_->Wait({"ready/0", "ready/1", "ready/2"}, absl::Seconds(20)).ok());
  absl::SleepFor(absl::Milliseconds(200));  // rank 0 is inside the send to rank 2 now
  procs_.Kill(pids[2], SIGKILL);
  ExpectAllSucceed({pids[0]}, absl::Seconds(15));
  int code = 0;
  int64_t elapsed_ms = 0;
  ReadResult(0, &code, &elapsed_ms);
  EXPECT_EQ(code, static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_LT(elapsed_ms, 15000);
}

INSTANTIATE_TEST_SUITE_P(Transports, UcxTest, ::testing::Bool(), [](const auto& info) {
  return info.param ? std::string("SharedMemory") : std::string("TcpOnly");
});

TEST(UcxTransport, RejectsBadArguments) {
  UcxOptions options;
  options.rank = 1;
  options.size = 1;
  EXPECT_EQ(UcxTransport::Create(options).status().code(), absl::StatusCode::kInvalidArgument);

  auto server = RendezvousServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  TcpStoreClient store((*server)->address());
  options.rank = 0;
  options.store = &store;
  auto t = UcxTransport::Create(options);
  ASSERT_TRUE(t.ok()) << t.status();
  char c = 0;
  EXPECT_EQ((*t)->Send(0, 1, &c, 1).code(), absl::StatusCode::kInvalidArgument);  // self
  EXPECT_EQ((*t)->Send(1, 1, &c, 1).code(), absl::StatusCode::kInvalidArgument);  // no rank 1
  EXPECT_EQ((*t)->Recv(-1, 1, &c, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(UcxTransport, MissingPeerIsDeadlineExceeded) {
  auto server = RendezvousServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  TcpStoreClient store((*server)->address());
  UcxOptions options;
  options.rank = 0;
  options.size = 2;
  options.store = &store;
  options.timeout = absl::Milliseconds(300);
  EXPECT_EQ(UcxTransport::Create(options).status().code(), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace tandem::comm::testing
