#include "comm/gloo_communicator.h"

#include <csignal>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "comm/gloo_errors.h"
#include "core/status.h"
#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/math.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/tcp/device.h"
#include "gloo/transport/unbound_buffer.h"
#include "gloo/types.h"

namespace tandem::comm {
namespace {

using internal::GlooCall;
using internal::StoreException;

// Presents a RendezvousStore to Gloo under a key prefix; failures travel as StoreException.
class GlooStoreAdapter : public gloo::rendezvous::Store {
 public:
  // Every store operation ends by `deadline` (the whole connection set-up shares it).
  GlooStoreAdapter(RendezvousStore* store, std::string prefix, absl::Time deadline)
      : store_(store), prefix_(std::move(prefix)), deadline_(deadline) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    Throw(store_->Set(Key(key), absl::string_view(data.data(), data.size())));
  }
  std::vector<char> get(const std::string& key) override {
    absl::StatusOr<std::string> value = store_->Get(Key(key), Left());
    Throw(value.status());
    return std::vector<char>(value->begin(), value->end());
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, ToChrono(Left())); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    std::vector<std::string> full;
    for (const std::string& k : keys) full.push_back(Key(k));
    Throw(store_->Wait(full, std::min(Left(), absl::FromChrono(timeout))));
  }

 private:
  static std::chrono::milliseconds ToChrono(absl::Duration d) {
    return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
  }
  absl::Duration Left() const { return std::max(deadline_ - absl::Now(), absl::ZeroDuration()); }
  std::string Key(const std::string& key) const { return absl::StrCat(prefix_, "/", key); }
  static void Throw(const absl::Status& s) {
    if (!s.ok()) throw StoreException(s);
  }

  RendezvousStore* store_;
  std::string prefix_;
  absl::Time deadline_;
};

void IgnoreSigpipeIfDefault() {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<GlooCommunicator>> GlooCommunicator::Create(
    const GlooOptions& options) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("gloo: rank ", options.rank, " is not in [0, size=", options.size, ")"));
  }
  if (options.store == nullptr) return absl::InvalidArgumentError("gloo: no rendezvous store");
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gloo: timeout ", absl::FormatDuration(options.timeout), " must be > 0"));
  }
  IgnoreSigpipeIfDefault();
  const std::string what = absl::StrCat("gloo rank ", options.rank, "/", options.size,
                                        " connecting (prefix '", options.prefix, "')");
  const absl::Time deadline = absl::Now() + options.timeout;
  std::shared_ptr<gloo::rendezvous::Context> context;
  RETURN_IF_ERROR(GlooCall(what, [&] {
    gloo::transport::tcp::attr attr;
    if (!options.iface.empty()) {
      attr.iface = options.iface;
    } else {
      attr.hostname = options.hostname;
    }
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    context = std::make_shared<gloo::rendezvous::Context>(options.rank, options.size);
    context->setTimeout(std::chrono::milliseconds(absl::ToInt64Milliseconds(options.timeout)));
    GlooStoreAdapter store(options.store, options.prefix, deadline);
    context->connectFullMesh(store, device);
  }));
  return std::unique_ptr<GlooCommunicator>(
      new GlooCommunicator(options.rank, options.size, options.timeout, std::move(context)));
}

GlooCommunicator::GlooCommunicator(int rank, int size, absl::Duration timeout,
                                   std::shared_ptr<gloo::Context> context)
    : rank_(rank), size_(size), timeout_(timeout), context_(std::move(context)) {}

GlooCommunicator::~GlooCommunicator() = default;

std::string GlooCommunicator::name() const { return absl::StrCat("gloo rank ", rank_, "/", size_); }

template <typename F>
absl::Status GlooCommunicator::Run(absl::string_view what, F&& f) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name(), " ", what, ": communicator failed earlier: ", failure_.message()));
  }
  const uint32_t tag = next_tag_++;
  const auto timeout = std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout_));
  absl::Status s = GlooCall(absl::StrCat(name(), " ", what),
                            [&] { std::forward<F>(f)(context_, tag, timeout); });
  if (!s.ok()) {
    failure_ = s;
    // Closing every connection makes the other ranks fail now rather than at their deadline.
    context_.reset();
  }
  return s;
}

void GlooCommunicator::Abort(const absl::Status& reason) {
  // A collective in progress holds mu_: leave it to end on its own (never block here).
  if (!mu_.TryLock()) return;
  if (failure_.ok()) {
    failure_ = absl::UnavailableError(absl::StrCat("aborted: ", reason.message()));
    context_.reset();  // closes every connection: the peers' collectives fail now
  }
  mu_.Unlock();
}

absl::Status GlooCommunicator::AllReduceSum(float* data, size_t n) {
  if (n == 0 || size_ == 1) return absl::OkStatus();
  const size_t bytes = n * sizeof(float);
  if (size_ > 2 && bytes > kExchangeMaxBytes) {
    // Large messages among more than two ranks: Gloo's ring moves 2 (size - 1) / size of the
    // buffer per rank instead of the exchange's size - 1.
    return Run(
        absl::StrCat("all-reduce of ", n, " floats"),
        [&](const std::shared_ptr<gloo::Context>& ctx, uint32_t tag, auto timeout) {
          gloo::AllreduceOptions opts(ctx);
          opts.setOutput(data, n);
          opts.setReduceFunction(
              static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
          opts.setTag(tag);
          opts.setTimeout(timeout);
          gloo::allreduce(opts);
        });
  }
  // One exchange: every rank sends its whole buffer to every other rank at once and sums the
  // contributions in rank order (bit-identical on every rank, and to the UCX communicator). Each
  // message of Gloo's TCP transport costs a round of thread hand-offs in both processes (the
  // receiver's "ready" notice, then the data, each read by the peer's event-loop thread and passed
  // to the waiting thread through a condition variable); Gloo's ring splits the buffer into
  // 2 x size segments and passes them in 2 (size - 1) sequential rounds, the exchange needs one
  // round. For two ranks it moves the same bytes.
  return Run(absl::StrCat("all-reduce of ", n, " floats"),
             [&](const std::shared_ptr<gloo::Context>& ctx, uint32_t tag, auto timeout)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                   std::vector<float>& all = scratch_;  // [size, n]
                   if (all.size() < static_cast<size_t>(size_) * n) {
                     all.resize(static_cast<size_t>(size_) * n);
                   }
                   const uint64_t slot = gloo::Slot::build(gloo::kAllreduceSlotPrefix, tag);
                   std::unique_ptr<gloo::transport::UnboundBuffer> in =
                       ctx->createUnboundBuffer(data, bytes);
                   std::unique_ptr<gloo::transport::UnboundBuffer> out =
                       ctx->createUnboundBuffer(all.data(), static_cast<size_t>(size_) * bytes);
                   for (int r = 0; r < size_; ++r) {
                     if (r != rank_) out->recv(r, slot, static_cast<size_t>(r) * bytes, bytes);
                   }
                   for (int r = 0; r < size_; ++r) {
                     if (r != rank_) in->send(r, slot);
                   }
                   for (int k = 1; k < size_; ++k) {
                     if (!out->waitRecv(timeout) || !in->waitSend(timeout)) {
                       throw gloo::IoException("all-reduce: a transfer was aborted");
                     }
                   }
                   std::memcpy(all.data() + static_cast<size_t>(rank_) * n, data, bytes);
                   std::memcpy(data, all.data(), bytes);
                   for (int r = 1; r < size_; ++r) {
                     const float* contribution = all.data() + static_cast<size_t>(r) * n;
                     for (size_t i = 0; i < n; ++i) data[i] += contribution[i];
                   }
                 });
}

absl::Status GlooCommunicator::AllGather(const void* in, size_t bytes_per_rank, void* out) {
  if (bytes_per_rank == 0) return absl::OkStatus();
  if (size_ == 1) {
    std::memcpy(out, in, bytes_per_rank);
    return absl::OkStatus();
  }
  return Run(absl::StrCat("all-gather of ", bytes_per_rank, " bytes per rank"),
             [&](const std::shared_ptr<gloo::Context>& ctx, uint32_t tag, auto timeout) {
               gloo::AllgatherOptions opts(ctx);
               opts.setInput(static_cast<char*>(const_cast<void*>(in)), bytes_per_rank);
               opts.setOutput(static_cast<char*>(out), bytes_per_rank * size_);
               opts.setTag(tag);
               opts.setTimeout(timeout);
               gloo::allgather(opts);
             });
}

absl::Status GlooCommunicator::Broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= size_) {
    return absl::InvalidArgumentError(
        absl::StrCat(name(), " broadcast: root ", root, " is not in [0, ", size_, ")"));
  }
  if (bytes == 0 || size_ == 1) return absl::OkStatus();
  return Run(absl::StrCat("broadcast of ", bytes, " bytes from rank ", root),
             [&](const std::shared_ptr<gloo::Context>& ctx, uint32_t tag, auto timeout) {
               gloo::BroadcastOptions opts(ctx);
               opts.setOutput(static_cast<char*>(data), bytes);
               opts.setRoot(root);
               opts.setTag(tag);
               opts.setTimeout(timeout);
               gloo::broadcast(opts);
             });
}

absl::Status GlooCommunicator::Barrier() {
  if (size_ == 1) return absl::OkStatus();
  return Run("barrier", [&](const std::shared_ptr<gloo::Context>& ctx, uint32_t tag, auto timeout) {
    gloo::BarrierOptions opts(ctx);
    opts.setTag(tag);
    opts.setTimeout(timeout);
    gloo::barrier(opts);
  });
}

}  // namespace tandem::comm
