#include "comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "comm/nccl_errors.h"
#include "core/logging.h"
#include "core/status.h"

namespace tandem::comm {

using internal::CudaErrorToStatus;
using internal::NcclResultToStatus;

struct NcclCommunicator::Handles {
  int device = 0;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  float* scratch = nullptr;  // [1] device float for Barrier

  ~Handles() {
    cudaSetDevice(device);
    if (comm != nullptr) ncclCommAbort(comm);
    if (scratch != nullptr) cudaFree(scratch);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

namespace {

// Polls the non-blocking communicator until it leaves ncclInProgress, or `deadline`.
absl::Status AwaitComm(ncclComm_t comm, absl::Time deadline, absl::string_view what) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    RETURN_IF_ERROR(NcclResultToStatus(ncclCommGetAsyncError(comm, &state), what, comm));
    if (state != ncclInProgress) return NcclResultToStatus(state, what, comm);
    if (absl::Now() >= deadline)
      return absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
    absl::SleepFor(absl::Microseconds(20));
  }
}

}  // namespace

absl::StatusOr<std::string> NewNcclUniqueId() {
  ncclUniqueId id;
  RETURN_IF_ERROR(NcclResultToStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  return std::string(id.internal, sizeof(id.internal));
}

absl::StatusOr<std::string> ShareNcclUniqueId(RendezvousStore& store, absl::string_view key,
                                              int rank, absl::Duration timeout) {
  if (rank == 0) {
    ASSIGN_OR_RETURN(std::string id, NewNcclUniqueId());
    RETURN_IF_ERROR(store.Set(key, id));
    return id;
  }
  return store.Get(key, timeout);
}

absl::StatusOr<int> CudaDeviceCount() {
  int count = 0;
  RETURN_IF_ERROR(CudaErrorToStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
  return count;
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const NcclOptions& options) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl: rank ", options.rank, " is not in [0, size=", options.size, ")"));
  }
  ncclUniqueId id;
  if (options.unique_id.size() != sizeof(id.internal)) {
    return absl::InvalidArgumentError(absl::StrCat("nccl: unique id of ", options.unique_id.size(),
                                                   " bytes, expected ", sizeof(id.internal)));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl: timeout ", absl::FormatDuration(options.timeout), " must be > 0"));
  }
  std::memcpy(id.internal, options.unique_id.data(), sizeof(id.internal));
  const std::string what =
      absl::StrCat("nccl rank ", options.rank, "/", options.size, " on device ", options.device);
  auto handles = std::make_unique<Handles>();
  handles->device = options.device;
  RETURN_IF_ERROR(CudaErrorToStatus(cudaSetDevice(options.device), what));
  RETURN_IF_ERROR(
      CudaErrorToStatus(cudaStreamCreateWithFlags(&handles->stream, cudaStreamNonBlocking), what));
  RETURN_IF_ERROR(CudaErrorToStatus(
      cudaMalloc(reinterpret_cast<void**>(&handles->scratch), sizeof(float)), what));

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const absl::Time deadline = absl::Now() + options.timeout;
  const ncclResult_t r =
      ncclCommInitRankConfig(&handles->comm, options.size, id, options.rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    // handles' destructor aborts a half-made communicator.
    return NcclResultToStatus(r, absl::StrCat(what, ": ncclCommInitRankConfig"), handles->comm);
  }
  RETURN_IF_ERROR(AwaitComm(handles->comm, deadline, absl::StrCat(what, ": init")));
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(
      options.rank, options.size, options.device, options.timeout, std::move(handles)));
}

NcclCommunicator::NcclCommunicator(int rank, int size, int device, absl::Duration timeout,
                                   std::unique_ptr<Handles> handles)
    : rank_(rank), size_(size), device_(device), timeout_(timeout), handles_(std::move(handles)) {}

NcclCommunicator::~NcclCommunicator() {
  absl::MutexLock lock(&mu_);
  if (handles_ == nullptr || handles_->comm == nullptr) return;
  cudaSetDevice(device_);
  const absl::Time deadline = absl::Now() + std::min(timeout_, absl::Seconds(5));
  ncclComm_t comm = handles_->comm;
  const ncclResult_t r = ncclCommFinalize(comm);
  absl::Status s = r == ncclSuccess || r == ncclInProgress
                       ? AwaitComm(comm, deadline, absl::StrCat(name(), " finalize"))
                       : NcclResultToStatus(r, absl::StrCat(name(), " finalize"), comm);
  if (s.ok()) {
    ncclCommDestroy(comm);
    handles_->comm = nullptr;  // otherwise ~Handles aborts it
  } else {
    TANDEM_LOG(WARNING) << s << "; aborting";
  }
}

std::string NcclCommunicator::name() const {
  return absl::StrCat("nccl rank ", rank_, "/", size_, " (device ", device_, ")");
}

template <typename F>
absl::Status NcclCommunicator::Run(absl::string_view op, F&& enqueue) {
  absl::MutexLock lock(&mu_);
  const std::string what = absl::StrCat(name(), " ", op);
  if (!failure_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": communicator failed earlier: ", failure_.message()));
  }
  const absl::Time deadline = absl::Now() + timeout_;
  ncclComm_t comm = handles_->comm;
  auto run = [&]() -> absl::Status {
    RETURN_IF_ERROR(CudaErrorToStatus(cudaSetDevice(device_), what));
    const ncclResult_t r = enqueue(comm, handles_->stream);
    if (r != ncclSuccess && r != ncclInProgress) return NcclResultToStatus(r, what, comm);
    RETURN_IF_ERROR(AwaitComm(comm, deadline, what));  // enqueued
    for (;;) {
      const cudaError_t q = cudaStreamQuery(handles_->stream);
      if (q == cudaSuccess) return absl::OkStatus();
      if (q != cudaErrorNotReady) return CudaErrorToStatus(q, what);
      ncclResult_t state = ncclSuccess;
      RETURN_IF_ERROR(NcclResultToStatus(ncclCommGetAsyncError(comm, &state), what, comm));
      if (state != ncclSuccess && state != ncclInProgress) {
        return NcclResultToStatus(state, what, comm);
      }
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
      }
      absl::SleepFor(absl::Microseconds(5));
    }
  };
  absl::Status s = run();
  if (!s.ok()) {
    failure_ = s;
    ncclCommAbort(comm);  // makes the peers' collectives fail too
    handles_->comm = nullptr;
  }
  return s;
}

void NcclCommunicator::Abort(const absl::Status& reason) {
  // A collective in progress holds mu_: leave it to end on its own (never block here).
  if (!mu_.TryLock()) return;
  if (failure_.ok()) {
    failure_ = absl::UnavailableError(absl::StrCat("aborted: ", reason.message()));
    if (handles_ && handles_->comm != nullptr) {
      ncclCommAbort(handles_->comm);  // makes the peers' collectives fail too
      handles_->comm = nullptr;
    }
  }
  mu_.Unlock();
}

absl::Status NcclCommunicator::AllReduceSum(float* data, size_t n) {
  if (n == 0) return absl::OkStatus();
  return Run(absl::StrCat("all-reduce of ", n, " floats"), [&](ncclComm_t c, cudaStream_t s) {
    return ncclAllReduce(data, data, n, ncclFloat32, ncclSum, c, s);
  });
}

absl::Status NcclCommunicator::AllGather(const void* in, size_t bytes_per_rank, void* out) {
  if (bytes_per_rank == 0) return absl::OkStatus();
  return Run(absl::StrCat("all-gather of ", bytes_per_rank, " bytes per rank"),
             [&](ncclComm_t c, cudaStream_t s) {
               return ncclAllGather(in, out, bytes_per_rank, ncclUint8, c, s);
             });
}

absl::Status NcclCommunicator::Broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= size_) {
    return absl::InvalidArgumentError(
        absl::StrCat(name(), " broadcast: root ", root, " is not in [0, ", size_, ")"));
  }
  if (bytes == 0) return absl::OkStatus();
  return Run(absl::StrCat("broadcast of ", bytes, " bytes from rank ", root),
             [&](ncclComm_t c, cudaStream_t s) {
               return ncclBroadcast(data, data, bytes, ncclUint8, root, c, s);
             });
}

absl::Status NcclCommunicator::Barrier() {
  return Run("barrier", [&](ncclComm_t c, cudaStream_t s) {
    float* scratch = handles_->scratch;
    return ncclAllReduce(scratch, scratch, 1, ncclFloat32, ncclSum, c, s);
  });
}

}  // namespace tandem::comm
