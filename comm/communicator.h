// Communicator: tensor-parallel collectives among the `size()` ranks of one TP group.
//
// One object per process and group; "topology is a value, communicators are objects": there is
// no global rank. Implementations: GlooCommunicator (CPU ranks, TCP) and NcclCommunicator (GPU
// ranks; buffers are device pointers there, host pointers for Gloo).
//
// Contract shared by every implementation:
// - Collectives are matched by call order: every rank issues the same sequence of calls with the
//   same sizes (and the same root for Broadcast).
// - Every call has a deadline (the communicator's operation timeout, fixed at creation). A dead or
//   stuck peer makes the call return an error within that bound, never hang:
//   UNAVAILABLE (a peer failed or closed its connection), DEADLINE_EXCEEDED (the timeout expired),
//   INVALID_ARGUMENT (bad arguments, e.g. root out of range), and FAILED_PRECONDITION for any call
//   after the communicator has failed.
// - After any error other than INVALID_ARGUMENT the communicator is broken for good: the group
//   must be rebuilt (new rendezvous). Implementations tear their connections down on the first
//   error so that the other ranks fail fast too instead of waiting for their own timeouts.
// - Thread safety: calls may come from several threads, but they are serialised by the object
//   (one collective at a time); to overlap collectives use one communicator per stream of work.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace tandem::comm {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // A short name for logs and errors, e.g. "gloo rank 1/4".
  virtual std::string name() const = 0;

  // data[0..n) := elementwise sum over all ranks of their data[0..n).
  [[nodiscard]] virtual absl::Status AllReduceSum(float* data, size_t n) = 0;

  // out[r * bytes_per_rank ..][0..bytes_per_rank) := in of rank r, for every rank r.
  // `out` holds size() * bytes_per_rank bytes and must not overlap `in`.
  [[nodiscard]] virtual absl::Status AllGather(const void* in, size_t bytes_per_rank,
                                               void* out) = 0;

  // data[0..bytes) of every rank := data of rank `root`.
  [[nodiscard]] virtual absl::Status Broadcast(void* data, size_t bytes, int root) = 0;

  // Returns once every rank has entered Barrier.
  [[nodiscard]] virtual absl::Status Barrier() = 0;
  // Breaks the communicator because the step failed elsewhere (a pipeline peer died, the group is
  // being rebuilt): it closes its connections, so the other ranks' pending and next collectives
  // fail now instead of at their timeout, and later calls here return FAILED_PRECONDITION naming
  // `reason`. Thread-safe and non-blocking: while a collective runs on another thread it does
  // nothing (that collective ends on its own, failing when its peers close their connections, or
  // at its timeout). Idempotent.
  virtual void Abort(const absl::Status& reason) = 0;
};

}  // namespace tandem::comm
