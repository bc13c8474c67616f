#include "comm/ucx_communicator.h"

#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace tandem::comm {

absl::StatusOr<std::unique_ptr<UcxCommunicator>> UcxCommunicator::Create(
    const UcxOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<UcxTransport> transport, UcxTransport::Create(options));
  return std::unique_ptr<UcxCommunicator>(
      new UcxCommunicator(options.rank, options.size, std::move(transport)));
}

UcxCommunicator::UcxCommunicator(int rank, int size, std::unique_ptr<UcxTransport> transport)
    : rank_(rank), size_(size), transport_(std::move(transport)) {}

UcxCommunicator::~UcxCommunicator() = default;

std::string UcxCommunicator::name() const {
  return absl::StrCat("ucx collectives rank ", rank_, "/", size_);
}

template <typename F>
absl::Status UcxCommunicator::Run(absl::string_view what, F&& op) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name(), " ", what, ": communicator failed earlier: ", failure_.message()));
  }
  absl::Status s = core::Annotate(std::forward<F>(op)(), absl::StrCat(name(), " ", what));
  if (!s.ok()) {
    failure_ = s;
    transport_.reset();  // closes the endpoints: tells the peers, releases the buffers
  }
  return s;
}

void UcxCommunicator::Abort(const absl::Status& reason) {
  // A collective in progress holds mu_: leave it to end on its own (never block here).
  if (!mu_.TryLock()) return;
  if (failure_.ok()) {
    failure_ = absl::UnavailableError(absl::StrCat("aborted: ", reason.message()));
    transport_.reset();  // closes the endpoints: the peers' collectives fail now
  }
  mu_.Unlock();
}

absl::Status UcxCommunicator::ExchangeAll(const void* in, size_t bytes, char* out,
                                          absl::string_view what) {
  const uint64_t tag = next_tag_++ & kMaxTransportTag;
  const absl::Time deadline = absl::Now() + transport_->default_timeout();
  auto left = [&] { return std::max(deadline - absl::Now(), absl::ZeroDuration()); };
  // Step k: send to rank + k, receive from rank - k. The ranks of one cycle of "+k" serialise
  // behind its smallest member (which sends first; the others receive first), so blocking
  // rendezvous sends cannot wait on each other in a circle.
  for (int k = 1; k < size_; ++k) {
    const int to = (rank_ + k) % size_;
    const int from = (rank_ - k + size_) % size_;
    const bool send_first = rank_ < std::gcd(size_, k);
    for (int phase = 0; phase < 2; ++phase) {
      if ((phase == 0) == send_first) {
        RETURN_IF_ERROR(transport_->Send(to, tag, in, bytes, left()));
      } else {
        ASSIGN_OR_RETURN(size_t got,
                         transport_->Recv(from, tag, out + from * bytes, bytes, left()));
        if (got != bytes) {
          return absl::InternalError(absl::StrCat(what, ": rank ", from, " sent ", got,
                                                  " bytes, expected ", bytes,
                                                  " (ranks disagree on the call sequence)"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status UcxCommunicator::AllReduceSum(float* data, size_t n) {
  if (n == 0 || size_ == 1) return absl::OkStatus();
  const std::string what = absl::StrCat("all-reduce of ", n, " floats");
  return Run(what, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    std::vector<float>& all = scratch_;  // [size, n]
    if (all.size() < static_cast<size_t>(size_) * n) all.resize(static_cast<size_t>(size_) * n);
    RETURN_IF_ERROR(
        ExchangeAll(data, n * sizeof(float), reinterpret_cast<char*>(all.data()), what));
    std::memcpy(all.data() + rank_ * n, data, n * sizeof(float));
    // Rank order on every rank: bit-identical sums everywhere.
    std::memcpy(data, all.data(), n * sizeof(float));
    for (int r = 1; r < size_; ++r) {
      const float* contribution = all.data() + r * n;
      for (size_t i = 0; i < n; ++i) data[i] += contribution[i];
    }
    return absl::OkStatus();
  });
}

absl::Status UcxCommunicator::AllGather(const void* in, size_t bytes_per_rank, void* out) {
  if (bytes_per_rank == 0) return absl::OkStatus();
  char* out_bytes = static_cast<char*>(out);
  std::memcpy(out_bytes + rank_ * bytes_per_rank, in, bytes_per_rank);
  if (size_ == 1) return absl::OkStatus();
  const std::string what = absl::StrCat("all-gather of ", bytes_per_rank, " bytes per rank");
  return Run(what, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ExchangeAll(in, bytes_per_rank, out_bytes, what);
  });
}

absl::Status UcxCommunicator::Broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= size_) {
    return absl::InvalidArgumentError(
        absl::StrCat(name(), " broadcast: root ", root, " is not in [0, ", size_, ")"));
  }
  if (bytes == 0 || size_ == 1) return absl::OkStatus();
  const std::string what = absl::StrCat("broadcast of ", bytes, " bytes from rank ", root);
  return Run(what, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    const uint64_t tag = next_tag_++ & kMaxTransportTag;
    const absl::Time deadline = absl::Now() + transport_->default_timeout();
    auto left = [&] { return std::max(deadline - absl::Now(), absl::ZeroDuration()); };
    if (rank_ == root) {
      for (int r = 0; r < size_; ++r) {
        if (r != root) RETURN_IF_ERROR(transport_->Send(r, tag, data, bytes, left()));
      }
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(size_t got, transport_->Recv(root, tag, data, bytes, left()));
    if (got != bytes) {
      return absl::InternalError(absl::StrCat(what, ": received ", got, " bytes"));
    }
    return absl::OkStatus();
  });
}

absl::Status UcxCommunicator::Barrier() {
  if (size_ == 1) return absl::OkStatus();
  return Run("barrier", [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const char token = 'b';
    std::vector<char> tokens(size_);
    return ExchangeAll(&token, 1, tokens.data(), "barrier");
  });
}

}  // namespace tandem::comm
