// Transport: point-to-point messages between the ranks of a pipeline (stage s -> stage s+1).
//
// Messages are matched by (sender, tag): Recv(peer, tag) takes the next message that `peer` sent
// with `tag`; messages with the same (sender, tag) arrive in send order. Tags are 48-bit.
//
// Memory: `data` pointers go to the transport as they are. Host memory always works; device
// memory works where supports_device_memory() says so (UCX built with CUDA); otherwise callers
// stage through host memory.
//
// Deadlines and errors: every call waits at most its timeout (default_timeout() when not given).
// UNAVAILABLE: the peer died or its connection failed; every later call with that peer fails the
// same way at once. DEADLINE_EXCEEDED: the timeout expired (a timed-out Recv leaves the peer
// usable unless it was already receiving a large message, which cannot be cancelled: then, as
// for a timed-out Send, whose message may be half sent, the connection to that peer is closed).
// OUT_OF_RANGE: the message was larger than the receive buffer. INVALID_ARGUMENT: bad peer or tag.
// A call returns only once the transport no longer touches `data`.
//
// Thread safety: all methods are thread-safe; calls from several threads proceed concurrently
// (e.g. one thread receiving from the previous stage while another sends to the next).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::comm {

inline constexpr uint64_t kMaxTransportTag = (uint64_t{1} << 48) - 1;

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual absl::Duration default_timeout() const = 0;
  virtual bool supports_device_memory() const = 0;

  // Sends data[0..bytes) to `peer`; returns when `data` may be reused.
  [[nodiscard]] virtual absl::Status Send(int peer, uint64_t tag, const void* data, size_t bytes,
                                          absl::Duration timeout) = 0;
  // Receives the next message from `peer` with `tag` into data[0..capacity); returns its size.
  [[nodiscard]] virtual absl::StatusOr<size_t> Recv(int peer, uint64_t tag, void* data,
                                                    size_t capacity, absl::Duration timeout) = 0;

  // Closes every connection because the step failed elsewhere, so peers waiting on this rank fail
  // now; later calls fail naming `reason`. Thread-safe: a Send/Recv waiting on another thread
  // fails promptly too (how a worker frees a step stuck on a dead peer). Idempotent.
  virtual void Abort(const absl::Status& reason) = 0;

  [[nodiscard]] absl::Status Send(int peer, uint64_t tag, const void* data, size_t bytes) {
    return Send(peer, tag, data, bytes, default_timeout());
  }
  [[nodiscard]] absl::StatusOr<size_t> Recv(int peer, uint64_t tag, void* data, size_t capacity) {
    return Recv(peer, tag, data, capacity, default_timeout());
  }
};

}  // namespace tandem::comm
