// Helpers for comm tests that run real ranks (comm_test_peer) on loopback.
#pragma once

#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "comm/tcp_rendezvous.h"
#include "gtest/gtest.h"
#include "tests/comm/process_group.h"

namespace tandem::comm::testing {

// Starts a rendezvous server and the peers; a watchdog alarm bounds the whole test.
class MultiProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alarm(90);  // last resort: SIGALRM ends the test binary; children die by their own alarm
    auto server = RendezvousServer::Start("127.0.0.1", 0);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    store_ = std::make_unique<TcpStoreClient>(server_->address());
    seed_ = std::random_device{}();
    std::cerr << "seed " << seed_ << "\n";
  }
  void TearDown() override {
    procs_.KillAll();
    EXPECT_FALSE(procs_.AnyAlive()) << "a child process was left behind";
    if (server_ != nullptr) server_->Stop();
    alarm(0);
  }

  std::vector<pid_t> SpawnRanks(const std::string& mode, int size) {
    std::vector<pid_t> pids;
    for (int r = 0; r < size; ++r) {
      pids.push_back(procs_.Spawn({TANDEM_BINARY_DIR "/bin/comm_test_peer", mode, absl::StrCat(r),
                                   absl::StrCat(size), server_->address(), absl::StrCat(seed_)}));
    }
    return pids;
  }

  // Expects every pid to exit with status 0 before `timeout`.
  void ExpectAllSucceed(const std::vector<pid_t>& pids, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (size_t r = 0; r < pids.size(); ++r) {
      const int status = procs_.Wait(pids[r], deadline);
      ASSERT_NE(status, -1) << "rank " << r << " still running after " << timeout;
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "rank " << r << " wait status " << status;
    }
  }

  // Reads "result/<rank>" = "<status code> <elapsed ms>" written by a peer.
  void ReadResult(int rank, int* code, int64_t* elapsed_ms) {
    auto v = store_->Get(absl::StrCat("result/", rank), absl::Seconds(1));
    ASSERT_TRUE(v.ok()) << v.status();
    std::vector<std::string> parts = absl::StrSplit(*v, ' ');
    ASSERT_EQ(parts.size(), 2u) << *v;
    ASSERT_TRUE(absl::SimpleAtoi(parts[0], code));
    ASSERT_TRUE(absl::SimpleAtoi(parts[1], elapsed_ms));
  }

  std::unique_ptr<RendezvousServer> server_;
  std::unique_ptr<TcpStoreClient> store_;
  uint64_t seed_ = 0;
  ProcessGroup procs_;
};

}  // namespace tandem::comm::testing
