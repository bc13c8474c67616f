// NcclCommunicator: the Communicator of GPU ranks, over NCCL. Built only with CUDA and NCCL
// (TANDEM_HAVE_NCCL); this header carries no CUDA types.
//
// The communicator is created non-blocking (ncclConfig_t.blocking = 0): creation and every
// collective are polled with ncclCommGetAsyncError and cudaStreamQuery against a deadline, and
// on an error or timeout the communicator is aborted (ncclCommAbort), so a dead peer is an error
// within `timeout`, never a hang. After that, calls return FAILED_PRECONDITION (communicator.h).
//
// The unique id comes from whoever starts the ranks: one rank (or the launcher) calls
// NewNcclUniqueId() and distributes the bytes, e.g. with ShareNcclUniqueId through the same
// RendezvousStore the other communicators use.
//
// Buffers are device pointers on `device`. Each call enqueues on the communicator's own CUDA
// stream and returns once the collective has completed (the data is ready on the device).
// Thread-safe: calls are serialised by an internal mutex; each sets the CUDA device it needs.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "comm/communicator.h"
#include "comm/rendezvous_store.h"

namespace tandem::comm {

// A fresh NCCL unique id (ncclGetUniqueId), as bytes.
[[nodiscard]] absl::StatusOr<std::string> NewNcclUniqueId();

// Rank 0 creates a unique id and sets it under `key`; every rank returns it (others wait up to
// `timeout` for the key).
[[nodiscard]] absl::StatusOr<std::string> ShareNcclUniqueId(RendezvousStore& store,
                                                            absl::string_view key, int rank,
                                                            absl::Duration timeout);

// Number of usable CUDA devices; an error (e.g. no driver, no GPU) means "no GPU here".
[[nodiscard]] absl::StatusOr<int> CudaDeviceCount();

struct NcclOptions {
  int rank = 0;
  int size = 1;
  std::string unique_id;                       // bytes of an ncclUniqueId, the same on every rank
  int device = 0;                              // CUDA device ordinal of this rank
  absl::Duration timeout = absl::Seconds(30);  // creation and every collective
};

class NcclCommunicator final : public Communicator {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      const NcclOptions& options);
  // Finalizes (bounded wait) or aborts the communicator, then frees its stream and scratch.
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override;

  [[nodiscard]] absl::Status AllReduceSum(float* data, size_t n) override;
  [[nodiscard]] absl::Status AllGather(const void* in, size_t bytes_per_rank, void* out) override;
  [[nodiscard]] absl::Status Broadcast(void* data, size_t bytes, int root) override;
  [[nodiscard]] absl::Status Barrier() override;
  void Abort(const absl::Status& reason) override;

  struct Handles;  // NCCL communicator, CUDA stream, scratch buffer

 private:
  NcclCommunicator(int rank, int size, int device, absl::Duration timeout,
                   std::unique_ptr<Handles> handles);
  template <typename F>
  absl::Status Run(absl::string_view what, F&& enqueue);

  const int rank_;
  const int size_;
  const int device_;
  const absl::Duration timeout_;
  absl::Mutex mu_;
  std::unique_ptr<Handles> handles_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::comm
