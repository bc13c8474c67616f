#include "comm/ucx_communicator.h"

#include <csignal>

#include "gtest/gtest.h"
#include "tests/comm/multiprocess.h"

namespace tandem::comm::testing {
namespace {

// Parameters: number of ranks; whether UCX may use shared memory (else tcp only).
class UcxCommunicatorTest : public MultiProcessTest,
                            public ::testing::WithParamInterface<std::tuple<int, bool>> {
 protected:
  int Size() const { return std::get<0>(GetParam()); }
  std::string Mode(const std::string& mode) const {
    return std::get<1>(GetParam()) ? mode : mode + "_tcp";
  }
};

TEST_P(UcxCommunicatorTest, CollectivesMatchReference) {
  ExpectAllSucceed(SpawnRanks(Mode("ucx_collectives"), Size()), absl::Seconds(40));
}

TEST_P(UcxCommunicatorTest, KilledPeerFailsSurvivorsWithinDeadline) {
  const int size = Size();
  std::vector<pid_t> pids = SpawnRanks(Mode("ucx_collectives_kill"), size);
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(absl::StrCat("ready/", r));
  ASSERT_TRUE(store_->Wait(keys, absl::Seconds(20)).ok());
  absl::SleepFor(absl::Milliseconds(200));
  procs_.Kill(pids.back(), SIGKILL);
  pids.pop_back();
  ExpectAllSucceed(pids, absl::Seconds(15));
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

INSTANTIATE_TEST_SUITE_P(Ranks, UcxCommunicatorTest,
                         ::testing::Combine(::testing::Values(2, 4), ::testing::Bool()),
                         [](const auto& info) {
                           return absl::StrCat(
                               std::get<0>(info.param), "Ranks",
                               std::get<1>(info.param) ? "SharedMemory" : "TcpOnly");
                         });

}  // namespace
}  // namespace tandem::comm::testing
