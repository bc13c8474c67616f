// UcxTransport: the pipeline Transport over UCX tagged messages (tcp and shared memory here;
// CUDA memory where UCX was built with CUDA support).
//
// One UCP context and worker per process. Create() publishes this rank's worker address under
// `<prefix>/addr/<rank>` in the RendezvousStore and creates an endpoint to every other rank from
// their addresses, waiting up to `timeout` for them. Endpoints use UCX's peer error handling
// (UCP_ERR_HANDLING_MODE_PEER) with an error callback, and same-machine peers' processes are
// watched (see UcxOptions::shared_memory): when a peer dies its endpoint fails, pending sends to
// it fail, pending receives from it are cancelled, and every later call with it returns
// UNAVAILABLE at once. Every wait has a deadline (transport.h).
//
// The sender's rank travels in the top 16 bits of the UCX tag, so Recv can match on
// (peer, tag): at most 65536 ranks, 48-bit user tags.
//
// Thread-safe: the UCX worker is progressed under an internal mutex that is released between
// polls, so several threads can wait on their own operations at once.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "comm/rendezvous_store.h"
#include "comm/transport.h"

namespace tandem::comm {

struct UcxOptions {
  int rank = 0;
  int size = 1;
  // Used only during Create (not kept); the same store for all ranks of the group.
  RendezvousStore* store = nullptr;
  // Namespace of this group's keys in the store.
  std::string prefix = "ucx";
  // Deadline of the connection set-up and the default deadline of Send/Recv.
  absl::Duration timeout = absl::Seconds(30);
  // Lets UCX use its shared-memory transports (sysv, posix) between ranks on the same machine,
  // several times faster than tcp over loopback, by setting UCX_POSIX_ERROR_HANDLING=y and
  // UCX_SYSV_ERROR_HANDLING=y in the environment unless already set (UCX 1.13 reads these only
  // from there; call Create before starting threads that read the environment). UCX does not
  // notice a dead peer over shared memory, so the transport then watches same-machine peers'
  // processes itself (/proc/<pid>, every 50 ms while waiting on one). false: no shared memory
  // (UCX_TLS=^posix,sysv); a dead peer is seen by UCX itself when its tcp connection closes.
  bool shared_memory = true;
  // The address other ranks reach this one at (empty = 127.0.0.1). UCX's network transports are
  // limited to the interface holding it (UCX's NET_DEVICES), so this rank listens on no other
  // interface; an explicit UCX_NET_DEVICES in the environment wins.
  std::string host;
};

class UcxTransport final : public Transport {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<UcxTransport>> Create(
      const UcxOptions& options);
  // Flushes and closes the endpoints (bounded wait), then releases the worker and context.
  ~UcxTransport() override;

  int rank() const override;
  int size() const override;
  absl::Duration default_timeout() const override;
  bool supports_device_memory() const override;

  using Transport::Recv;
  using Transport::Send;
  void Abort(const absl::Status& reason) override;
  [[nodiscard]] absl::Status Send(int peer, uint64_t tag, const void* data, size_t bytes,
                                  absl::Duration timeout) override;
  [[nodiscard]] absl::StatusOr<size_t> Recv(int peer, uint64_t tag, void* data, size_t capacity,
                                            absl::Duration timeout) override;

  // Which UCX transports the endpoint to `peer` uses, for logs and benchmarks ("tcp", "posix").
  std::string DescribePeer(int peer);

  struct State;

 private:
  explicit UcxTransport(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tandem::comm
