// GlooCommunicator: the Communicator of CPU ranks, over Gloo's TCP transport.
//
// Create() connects a full mesh among `size` processes: every rank publishes its pair addresses
// under `<prefix>/...` keys of a RendezvousStore (served by whoever started the ranks) and
// connects to the others, all within `timeout`. Every collective then runs with the same
// `timeout` as its deadline; a peer that dies shows up as UNAVAILABLE as soon as its connection
// closes (DEADLINE_EXCEEDED if it only stops answering). On the first failure the communicator
// closes all its connections, so that every other rank fails promptly too, and from then on
// returns FAILED_PRECONDITION (see communicator.h).
//
// Buffers are host memory. Calls are serialised by an internal mutex (thread-safe, one
// collective at a time). Creating one ignores SIGPIPE process-wide if it was at its default
// (Gloo writes to sockets without MSG_NOSIGNAL; a dead peer must be an error, not a signal).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "comm/communicator.h"
#include "comm/rendezvous_store.h"

namespace gloo {
class Context;
}

namespace tandem::comm {

struct GlooOptions {
  int rank = 0;
  int size = 1;
  // Used only during Create (not kept). Must be the same store for all ranks of the group.
  RendezvousStore* store = nullptr;
  // Namespace of this group's keys in the store; distinct groups need distinct prefixes.
  std::string prefix = "gloo";
  // Local address to listen on and advertise: a hostname or IP ("127.0.0.1" for loopback)...
  std::string hostname = "127.0.0.1";
  // ...or a network interface name ("eth0"); takes precedence over hostname when set.
  std::string iface;
  // Deadline of the connection set-up and of every collective.
  absl::Duration timeout = absl::Seconds(30);
};

class GlooCommunicator final : public Communicator {
 public:
  // AllReduceSum exchanges whole buffers (one round of messages, sums in rank order) for two
  // ranks, and for more ranks up to this many bytes; larger buffers among more ranks take Gloo's
  // ring all-reduce.
  static constexpr size_t kExchangeMaxBytes = 256 << 10;

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GlooCommunicator>> Create(
      const GlooOptions& options);
  ~GlooCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override;

  [[nodiscard]] absl::Status AllReduceSum(float* data, size_t n) override;
  [[nodiscard]] absl::Status AllGather(const void* in, size_t bytes_per_rank, void* out) override;
  [[nodiscard]] absl::Status Broadcast(void* data, size_t bytes, int root) override;
  [[nodiscard]] absl::Status Barrier() override;
  void Abort(const absl::Status& reason) override;

 private:
  GlooCommunicator(int rank, int size, absl::Duration timeout,
                   std::shared_ptr<gloo::Context> context);
  // Runs one Gloo collective under the lock; records the first failure and tears down.
  template <typename F>
  absl::Status Run(absl::string_view what, F&& f);

  const int rank_;
  const int size_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  std::shared_ptr<gloo::Context> context_ ABSL_GUARDED_BY(mu_);
  uint32_t next_tag_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::vector<float> scratch_ ABSL_GUARDED_BY(mu_);  // every rank's contribution, [size, n]
};

}  // namespace tandem::comm
