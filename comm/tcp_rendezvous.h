// A rendezvous key-value store over plain TCP: RendezvousServer (run by whoever starts the ranks)
// and TcpStoreClient (one per rank), implementing RendezvousStore.
//
// Wire format (both directions little-endian, one request at a time per connection):
//   request  := op:u8 key_len:u32 key value_len:u32 value timeout_ms:u32
//   response := code:u8 value_len:u32 value      code: 0 ok, 1 timed out, 2 bad request
// op 1 = Set, op 2 = Get (the server waits up to timeout_ms for the key). Oversized keys or values
// (rendezvous_store.h limits) make the server answer "bad request" and drop the connection.
//
// The server holds everything in memory, serves each connection on its own thread (a rendezvous
// has tens of ranks, not thousands) and stops (closing every connection) in Stop() or its
// destructor. Both classes are thread-safe; a client serialises its requests on one connection
// and reconnects after a failure.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "comm/rendezvous_store.h"

namespace tandem::comm {

class RendezvousServer {
 public:
  // Listens on host:port ("127.0.0.1", port 0 = any free port); serving starts at once.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RendezvousServer>> Start(
      absl::string_view host, int port);
  ~RendezvousServer();

  RendezvousServer(const RendezvousServer&) = delete;
  RendezvousServer& operator=(const RendezvousServer&) = delete;

  int port() const { return port_; }
  // "host:port", what clients connect to.
  std::string address() const;
  // Closes the listening socket and every connection; pending Gets fail. Idempotent.
  void Stop();

 private:
  RendezvousServer(std::string host, int listen_fd, int port);
  void AcceptLoop();
  void Serve(int fd);

  const std::string host_;
  const int listen_fd_;
  const int port_;
  std::thread accept_thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
  std::vector<int> conn_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> conn_threads_ ABSL_GUARDED_BY(mu_);
};

class TcpStoreClient : public RendezvousStore {
 public:
  // `address` is "host:port". Connects lazily; `connect_timeout` bounds each (re)connection,
  // retried while the server is not listening yet.
  TcpStoreClient(std::string address, absl::Duration connect_timeout = absl::Seconds(10));
  ~TcpStoreClient() override;

  [[nodiscard]] absl::Status Set(absl::string_view key, absl::string_view value) override;
  [[nodiscard]] absl::StatusOr<std::string> Get(absl::string_view key,
                                                absl::Duration timeout) override;

 private:
  // Sends one request and reads its response within `deadline`; returns (code, value).
  absl::StatusOr<std::pair<uint8_t, std::string>> RoundTrip(const std::string& request,
                                                            absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EnsureConnected(absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Disconnect() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string address_;
  const absl::Duration connect_timeout_;
  absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace tandem::comm
