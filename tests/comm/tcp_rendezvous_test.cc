#include "comm/tcp_rendezvous.h"

#include <random>
#include <thread>

#include "gtest/gtest.h"

namespace tandem::comm {
namespace {

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(std::random_device{}());
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class TcpRendezvousTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RendezvousServer::Start("127.0.0.1", 0);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  std::unique_ptr<RendezvousServer> server_;
};

TEST_F(TcpRendezvousTest, SetThenGetFromAnotherClient) {
  TcpStoreClient a(server_->address());
  TcpStoreClient b(server_->address());
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{3} << 20}) {
    const std::string key = "k" + std::to_string(n);
    const std::string value = RandomBytes(n);
    ASSERT_TRUE(a.Set(key, value).ok());
    auto got = b.Get(key, absl::Seconds(1));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, value);
  }
}

TEST_F(TcpRendezvousTest, GetWaitsForALaterSet) {
  TcpStoreClient a(server_->address());
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(100));
    TcpStoreClient b(server_->address());
    EXPECT_TRUE(b.Set("late", "value").ok());
  });
  auto got = a.Get("late", absl::Seconds(10));
  setter.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "value");
}

TEST_F(TcpRendezvousTest, MissingKeyTimesOut) {
  TcpStoreClient a(server_->address());
  auto got = a.Get("never", absl::Milliseconds(100));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
  // The connection stays usable.
  ASSERT_TRUE(a.Set("after", "x").ok());
  EXPECT_TRUE(a.Wait({"after"}, absl::Seconds(1)).ok());
  EXPECT_EQ(a.Wait({"after", "never"}, absl::Milliseconds(50)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(TcpRendezvousTest, BadKeysAreInvalidArgument) {
  TcpStoreClient a(server_->address());
  EXPECT_EQ(a.Set("", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Set(std::string(kMaxStoreKeyBytes + 1, 'k'), "x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Get("", absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TcpRendezvousTest, StoppedServerIsUnavailable) {
  TcpStoreClient a(server_->address(), absl::Milliseconds(300));
  ASSERT_TRUE(a.Set("k", "v").ok());
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(100));
    server_->Stop();
  });
  auto got = a.Get("pending", absl::Seconds(30));  // interrupted by Stop, not by its timeout
  stopper.join();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_EQ(a.Set("k", "v").code(), absl::StatusCode::kUnavailable);
}

TEST(TcpStoreClient, BadAddressIsInvalidArgument) {
  TcpStoreClient a("no-port-here");
  EXPECT_EQ(a.Set("k", "v").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::comm
