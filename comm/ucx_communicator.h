// UcxCommunicator: a Communicator for CPU ranks built on UcxTransport, for low latency.
//
// Gloo's collectives cross two blocking thread hand-offs per message in each process, which
// costs 0.2-4 ms per small all-reduce on a busy machine; this one exchanges buffers directly over
// UCX (shared memory between ranks of one machine) with polling waits: microseconds for the
// [T, H] sizes of a decode step. Algorithm: every rank exchanges its whole buffer with every
// other rank (size - 1 pairwise steps, deadlock-free with blocking sends), then sums the
// contributions in rank order, so every rank gets bit-identical results. That moves
// (size - 1) x n floats per rank: meant for the small tensor-parallel groups of one machine
// (2-8 ranks), not for large messages on many ranks.
//
// Contract as in communicator.h: calls matched by order, host buffers, every call bounded by the
// transport's timeout, broken for good after an error (it then closes its transport, so that
// the other ranks fail when their UCX sees the connection go, or at their deadline).
// Thread-safe: calls are serialised by an internal mutex. It owns its UcxTransport (use a store
// prefix distinct from the pipeline transport's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "comm/communicator.h"
#include "comm/ucx_transport.h"

namespace tandem::comm {

class UcxCommunicator final : public Communicator {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<UcxCommunicator>> Create(
      const UcxOptions& options);
  ~UcxCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override;

  [[nodiscard]] absl::Status AllReduceSum(float* data, size_t n) override;
  [[nodiscard]] absl::Status AllGather(const void* in, size_t bytes_per_rank, void* out) override;
  [[nodiscard]] absl::Status Broadcast(void* data, size_t bytes, int root) override;
  [[nodiscard]] absl::Status Barrier() override;
  void Abort(const absl::Status& reason) override;

 private:
  UcxCommunicator(int rank, int size, std::unique_ptr<UcxTransport> transport);
  // Sends `bytes` of `in` to every other rank and receives every other rank's `bytes` into
  // out + peer * bytes (out[rank] is left alone). Requires mu_ and a healthy transport.
  absl::Status ExchangeAll(const void* in, size_t bytes, char* out, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `op` under the lock; records the first failure and closes the transport.
  template <typename F>
  absl::Status Run(absl::string_view what, F&& op);

  const int rank_;
  const int size_;
  absl::Mutex mu_;
  std::unique_ptr<UcxTransport> transport_ ABSL_GUARDED_BY(mu_);
  uint64_t next_tag_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::vector<float> scratch_ ABSL_GUARDED_BY(mu_);  // every rank's contribution, [size, n]
};

}  // namespace tandem::comm
