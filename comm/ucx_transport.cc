#include "comm/ucx_transport.h"

#include <poll.h>
#include <sched.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "comm/net_interface.h"
#include "comm/ucx_errors.h"
#include "core/logging.h"
#include "core/status.h"

namespace tandem::comm {

using internal::UcsStatusToStatus;

namespace {

constexpr int kRankShift = 48;
constexpr uint64_t kFullMask = ~uint64_t{0};
constexpr int kMaxRanks = 1 << 16;
// A waiter polls the worker (yielding the CPU between polls) until it has seen no progress for
// this long, then sleeps on the worker's event fd in 1 ms naps. The event fd alone is not enough:
// UCX's tcp transport advances large (rendezvous) transfers only when progressed.
constexpr absl::Duration kSpinBeforeSleep = absl::Milliseconds(2);

uint64_t WireTag(int sender, uint64_t tag) {
  return (static_cast<uint64_t>(sender) << kRankShift) | tag;
}

// How long a cancelled receive may take to complete before the sender's endpoint is closed.
constexpr absl::Duration kCancelGrace = absl::Milliseconds(500);

// How often a waiter checks that a same-machine peer process still exists.
constexpr absl::Duration kProcessCheckInterval = absl::Milliseconds(50);

std::string ReadFirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "<boot id> <pid>": identifies this process among all processes of all machines.
std::string ProcessIdentity() {
  return absl::StrCat(ReadFirstLine("/proc/sys/kernel/random/boot_id"), " ", getpid());
}

// The pid of a peer whose identity says it runs on this machine (same boot id), else 0.
pid_t LocalPid(absl::string_view identity) {
  const std::string mine = ProcessIdentity();
  const size_t space = identity.rfind(' ');
  int pid = 0;
  if (space == absl::string_view::npos ||
      mine.substr(0, mine.rfind(' ')) != identity.substr(0, space) ||
      !absl::SimpleAtoi(identity.substr(space + 1), &pid)) {
    return 0;
  }
  return pid;
}

// False once `pid` has exited (gone, or a zombie nobody has reaped yet).
bool ProcessAlive(pid_t pid) {
  const std::string stat = ReadFirstLine(absl::StrCat("/proc/", pid, "/stat").c_str());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace

struct PeerSlot {
  UcxTransport::State* state = nullptr;
  int rank = 0;
  ucp_ep_h ep = nullptr;
  pid_t local_pid = 0;  // the peer's pid when it runs on this machine, else 0
  // Set once the peer is unusable (endpoint error, or a send that timed out).
  absl::Status failure;
};

struct UcxTransport::State {
  int rank = 0;
  int size = 0;
  absl::Duration timeout;
  bool device_memory = false;
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  int event_fd = -1;

  absl::Mutex mu;
  // Fixed size after Create; element contents guarded by mu.
  std::vector<PeerSlot> peers ABSL_GUARDED_BY(mu);
  // Endpoints that failed and still need ucp_ep_close_nbx(FORCE).
  std::vector<ucp_ep_h> to_close ABSL_GUARDED_BY(mu);

  std::string Name() const { return absl::StrCat("ucx rank ", rank, "/", size); }

  // Runs the worker's progress; closes endpoints that failed. Requires mu.
  unsigned Progress() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    unsigned n = 0;
    while (unsigned k = ucp_worker_progress(worker)) n += k;
    for (ucp_ep_h ep : std::exchange(to_close, {})) {
      ucp_request_param_t param{};
      param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      param.flags = UCP_EP_CLOSE_FLAG_FORCE;
      ucs_status_ptr_t req = ucp_ep_close_nbx(ep, &param);
      if (UCS_PTR_IS_PTR(req)) {
        while (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_worker_progress(worker);
        ucp_request_free(req);
      }
    }
    return n;
  }

  // Marks `peer` unusable with `failure` and schedules its endpoint's close. Requires mu.
  void FailPeer(int peer, absl::Status failure) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    PeerSlot& slot = peers[peer];
    if (slot.failure.ok()) {
      slot.failure = std::move(failure);
      TANDEM_LOG(WARNING) << Name() << ": peer " << peer << " failed: " << slot.failure;
    }
    if (slot.ep != nullptr) {
      to_close.push_back(slot.ep);
      slot.ep = nullptr;
    }
  }

  // Sleeps until the worker has events or ~1 ms passes (mu not held).
  void SleepOnWorker() ABSL_LOCKS_EXCLUDED(mu) {
    {
      absl::MutexLock lock(&mu);
      if (ucp_worker_arm(worker) == UCS_ERR_BUSY) return;
    }
    pollfd p{event_fd, POLLIN, 0};
    poll(&p, 1, 1);
  }

  // Waits for a send (is_recv false) or receive request; cancels it at the deadline or when
  // the peer fails, and always returns only once UCX has released the request.
  absl::StatusOr<size_t> Wait(void* request, bool is_recv, int peer, absl::Time deadline,
                              absl::string_view what) ABSL_LOCKS_EXCLUDED(mu) {
    absl::Status abort_reason;
    absl::Time abort_time;
    absl::Time last_progress = absl::Now();
    absl::Time last_process_check = last_progress;
    int idle = 0;
    for (;;) {
      {
        absl::MutexLock lock(&mu);
        const unsigned progressed = Progress();
        ucp_tag_recv_info_t info{};
        const ucs_status_t st =
            is_recv ? ucp_tag_recv_request_test(request, &info) : ucp_request_check_status(request);
        if (st != UCS_INPROGRESS) {
          ucp_request_free(request);
          if (st == UCS_OK) return is_recv ? info.length : 0;
          if (!abort_reason.ok()) return abort_reason;
          if (!peers[peer].failure.ok()) {
            return absl::UnavailableError(absl::StrCat(what, ": ", peers[peer].failure.message()));
          }
          return UcsStatusToStatus(st, what);
        }
        if (peers[peer].local_pid != 0 &&
            absl::Now() - last_process_check > kProcessCheckInterval) {
          last_process_check = absl::Now();
          if (!ProcessAlive(peers[peer].local_pid)) {
            FailPeer(peer, absl::UnavailableError(absl::StrCat("rank ", peer, " (pid ",
                                                               peers[peer].local_pid, ") exited")));
          }
        }
        if (abort_reason.ok()) {
          if (!peers[peer].failure.ok()) {
            abort_reason =
                absl::UnavailableError(absl::StrCat(what, ": ", peers[peer].failure.message()));
          } else if (absl::Now() >= deadline) {
            abort_reason = absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
          }
          if (!abort_reason.ok()) {
            abort_time = absl::Now();
            if (is_recv) {
              ucp_request_cancel(worker, request);
            } else {
              // A send cannot be cancelled on its own: close the endpoint, which fails it.
              FailPeer(peer, absl::UnavailableError(absl::StrCat(
                                 "closed after an earlier send timed out (", what, ")")));
            }
            continue;
          }
        } else if (is_recv && absl::Now() - abort_time > kCancelGrace &&
                   peers[peer].ep != nullptr) {
          // A receive already matched to a large message cannot be cancelled; closing the
          // sender's endpoint fails it, so that the wait ends.
          FailPeer(peer,
                   absl::UnavailableError(absl::StrCat(
                       "closed after a receive from it could not be cancelled (", what, ")")));
        }
        idle = progressed > 0 ? 0 : idle + 1;
      }
      if (idle == 0) {
        last_progress = absl::Now();
      } else if (idle % 64 == 0 && absl::Now() - last_progress > kSpinBeforeSleep) {
        SleepOnWorker();
      } else {
        sched_yield();
      }
    }
  }
};

namespace {

void OnEndpointError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  // Called from ucp_worker_progress, i.e. with State::mu held by this thread.
  auto* slot = static_cast<PeerSlot*>(arg);
  slot->state->mu.AssertHeld();
  slot->state->FailPeer(slot->rank,
                        UcsStatusToStatus(status, absl::StrCat("endpoint to rank ", slot->rank)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<UcxTransport>> UcxTransport::Create(const UcxOptions& options) {
  if (options.size < 1 || options.size > kMaxRanks || options.rank < 0 ||
      options.rank >= options.size) {
    return absl::InvalidArgumentError(absl::StrCat("ucx: rank ", options.rank,
                                                   " is not in [0, size=", options.size,
                                                   ") or size exceeds ", kMaxRanks));
  }
  if (options.store == nullptr) return absl::InvalidArgumentError("ucx: no rendezvous store");
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx: timeout ", absl::FormatDuration(options.timeout), " must be > 0"));
  }
  auto state = std::make_unique<State>();
  state->rank = options.rank;
  state->size = options.size;
  state->timeout = options.timeout;
  const std::string name = state->Name();
  // From here on the destructor of UcxTransport releases whatever was created.
  std::unique_ptr<UcxTransport> transport(new UcxTransport(std::move(state)));
  State& s = *transport->state_;

  // Environment variables set here for UCX, unset again once the worker has read them (so
  // that child processes do not inherit them).
  std::vector<const char*> env_set;
  auto restore_env = [&env_set] {
    for (const char* var : std::exchange(env_set, {})) unsetenv(var);
  };
  ucp_config_t* config = nullptr;
  RETURN_IF_ERROR(UcsStatusToStatus(ucp_config_read(nullptr, nullptr, &config),
                                    absl::StrCat(name, ": ucp_config_read")));
  if (options.shared_memory) {
    // UCX 1.13 takes transport-level settings only from the environment (ucp_config_modify
    // rejects them). Set before the worker reads them; an explicit user setting wins.
    for (const char* var : {"UCX_POSIX_ERROR_HANDLING", "UCX_SYSV_ERROR_HANDLING"}) {
      if (getenv(var) == nullptr) {
        setenv(var, "y", /*overwrite=*/0);
        env_set.push_back(var);
      }
    }
  } else {
    // Keep shared memory out even where the environment enabled it: nothing would watch it.
    const ucs_status_t st = ucp_config_modify(config, "TLS", "^posix,sysv");
    if (st != UCS_OK) {
      ucp_config_release(config);
      return UcsStatusToStatus(st, absl::StrCat(name, ": excluding shared-memory transports"));
    }
  }
  if (getenv("UCX_NET_DEVICES") == nullptr) {
    const std::string host = options.host.empty() ? "127.0.0.1" : options.host;
    absl::StatusOr<std::string> device = InterfaceOfAddress(host);
    ucs_status_t st = UCS_OK;
    if (device.ok()) st = ucp_config_modify(config, "NET_DEVICES", device->c_str());
    if (!device.ok() || st != UCS_OK) {
      ucp_config_release(config);
      restore_env();
      if (!device.ok()) {
        return core::Annotate(device.status(), absl::StrCat(name, ": the interface to listen on"));
      }
      return UcsStatusToStatus(st, absl::StrCat(name, ": NET_DEVICES=", *device));
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.name = "tandem";
  const ucs_status_t init_status = ucp_init(&params, config, &s.context);
  ucp_config_release(config);
  if (init_status != UCS_OK) restore_env();
  RETURN_IF_ERROR(UcsStatusToStatus(init_status, absl::StrCat(name, ": ucp_init")));

  ucp_context_attr_t context_attr{};
  context_attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  if (ucp_context_query(s.context, &context_attr) == UCS_OK) {
    s.device_memory = (context_attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
  }

  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  const ucs_status_t worker_status = ucp_worker_create(s.context, &worker_params, &s.worker);
  restore_env();
  RETURN_IF_ERROR(UcsStatusToStatus(worker_status, absl::StrCat(name, ": ucp_worker_create")));
  RETURN_IF_ERROR(UcsStatusToStatus(ucp_worker_get_efd(s.worker, &s.event_fd),
                                    absl::StrCat(name, ": ucp_worker_get_efd")));

  ucp_address_t* address = nullptr;
  size_t address_length = 0;
  RETURN_IF_ERROR(UcsStatusToStatus(ucp_worker_get_address(s.worker, &address, &address_length),
                                    absl::StrCat(name, ": ucp_worker_get_address")));
  const std::string my_address(reinterpret_cast<const char*>(address), address_length);
  ucp_worker_release_address(s.worker, address);
  RETURN_IF_ERROR(core::Annotate(
      options.store->Set(absl::StrCat(options.prefix, "/addr/", options.rank), my_address),
      absl::StrCat(name, ": publishing the worker address")));
  RETURN_IF_ERROR(core::Annotate(
      options.store->Set(absl::StrCat(options.prefix, "/proc/", options.rank), ProcessIdentity()),
      absl::StrCat(name, ": publishing the process identity")));

  const absl::Time deadline = absl::Now() + options.timeout;
  absl::MutexLock lock(&s.mu);
  s.peers.resize(options.size);
  for (int peer = 0; peer < options.size; ++peer) {
    PeerSlot& slot = s.peers[peer];
    slot.state = &s;
    slot.rank = peer;
    if (peer == options.rank) {
      slot.failure = absl::InvalidArgumentError("a rank does not send to itself");
      continue;
    }
    absl::StatusOr<std::string> peer_address =
        options.store->Get(absl::StrCat(options.prefix, "/addr/", peer),
                           std::max(deadline - absl::Now(), absl::ZeroDuration()));
    RETURN_IF_ERROR(core::Annotate(peer_address.status(),
                                   absl::StrCat(name, ": worker address of rank ", peer)));
    absl::StatusOr<std::string> identity =
        options.store->Get(absl::StrCat(options.prefix, "/proc/", peer),
                           std::max(deadline - absl::Now(), absl::ZeroDuration()));
    RETURN_IF_ERROR(
        core::Annotate(identity.status(), absl::StrCat(name, ": process identity of rank ", peer)));
    if (options.shared_memory) slot.local_pid = LocalPid(*identity);
    ucp_ep_params_t ep_params{};
    ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                           UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep_params.address = reinterpret_cast<const ucp_address_t*>(peer_address->data());
    ep_params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep_params.err_handler.cb = &OnEndpointError;
    ep_params.err_handler.arg = &slot;
    RETURN_IF_ERROR(UcsStatusToStatus(ucp_ep_create(s.worker, &ep_params, &slot.ep),
                                      absl::StrCat(name, ": endpoint to rank ", peer)));
  }
  return transport;
}

UcxTransport::UcxTransport(std::unique_ptr<State> state) : state_(std::move(state)) {}

UcxTransport::~UcxTransport() {
  State& s = *state_;
  if (s.worker != nullptr) {
    {
      absl::MutexLock lock(&s.mu);
      // Flush what was sent, but never wait long for a peer that is gone or stuck.
      const absl::Time deadline = absl::Now() + std::min(s.timeout, absl::Seconds(5));
      std::vector<void*> closing;
      for (PeerSlot& slot : s.peers) {
        if (slot.ep == nullptr) continue;
        ucp_request_param_t param{};
        ucs_status_ptr_t req = ucp_ep_close_nbx(slot.ep, &param);
        slot.ep = nullptr;
        if (UCS_PTR_IS_PTR(req)) closing.push_back(req);
      }
      s.Progress();
      for (void* req : closing) {
        while (ucp_request_check_status(req) == UCS_INPROGRESS && absl::Now() < deadline) {
          s.Progress();
        }
        if (ucp_request_check_status(req) == UCS_INPROGRESS) {
          TANDEM_LOG(WARNING) << s.Name() << ": an endpoint did not close in time";
        }
        ucp_request_free(req);
      }
    }
    ucp_worker_destroy(s.worker);
  }
  if (s.context != nullptr) ucp_cleanup(s.context);
}

void UcxTransport::Abort(const absl::Status& reason) {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  const absl::Status failure = absl::UnavailableError(absl::StrCat("aborted: ", reason.message()));
  for (int p = 0; p < static_cast<int>(s.peers.size()); ++p) {
    if (p != s.rank) s.FailPeer(p, failure);
  }
  s.Progress();  // closes the endpoints (forced): the peers see the connection go now
}

int UcxTransport::rank() const { return state_->rank; }
int UcxTransport::size() const { return state_->size; }
absl::Duration UcxTransport::default_timeout() const { return state_->timeout; }
bool UcxTransport::supports_device_memory() const { return state_->device_memory; }

absl::Status UcxTransport::Send(int peer, uint64_t tag, const void* data, size_t bytes,
                                absl::Duration timeout) {
  State& s = *state_;
  const std::string what =
      absl::StrCat(s.Name(), " send of ", bytes, " bytes to rank ", peer, " tag ", tag);
  if (peer < 0 || peer >= s.size || peer == s.rank || tag > kMaxTransportTag) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad peer or tag"));
  }
  const absl::Time deadline = absl::Now() + timeout;
  void* request = nullptr;
  {
    absl::MutexLock lock(&s.mu);
    PeerSlot& slot = s.peers[peer];
    if (!slot.failure.ok()) {
      return absl::UnavailableError(absl::StrCat(what, ": ", slot.failure.message()));
    }
    ucp_request_param_t param{};
    ucs_status_ptr_t req = ucp_tag_send_nbx(slot.ep, data, bytes, WireTag(s.rank, tag), &param);
    if (req == nullptr) return absl::OkStatus();
    if (UCS_PTR_IS_ERR(req)) return UcsStatusToStatus(UCS_PTR_STATUS(req), what);
    request = req;
  }
  return s.Wait(request, /*is_recv=*/false, peer, deadline, what).status();
}

absl::StatusOr<size_t> UcxTransport::Recv(int peer, uint64_t tag, void* data, size_t capacity,
                                          absl::Duration timeout) {
  State& s = *state_;
  const std::string what = absl::StrCat(s.Name(), " receive of up to ", capacity,
                                        " bytes from rank ", peer, " tag ", tag);
  if (peer < 0 || peer >= s.size || peer == s.rank || tag > kMaxTransportTag) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad peer or tag"));
  }
  const absl::Time deadline = absl::Now() + timeout;
  void* request = nullptr;
  {
    absl::MutexLock lock(&s.mu);
    if (!s.peers[peer].failure.ok()) {
      return absl::UnavailableError(absl::StrCat(what, ": ", s.peers[peer].failure.message()));
    }
    // Always a request, even when the message is already here, so that Wait reads its length.
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    ucs_status_ptr_t req =
        ucp_tag_recv_nbx(s.worker, data, capacity, WireTag(peer, tag), kFullMask, &param);
    if (UCS_PTR_IS_ERR(req)) return UcsStatusToStatus(UCS_PTR_STATUS(req), what);
    request = req;
  }
  return s.Wait(request, /*is_recv=*/true, peer, deadline, what);
}

std::string UcxTransport::DescribePeer(int peer) {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  if (peer < 0 || peer >= s.size || s.peers[peer].ep == nullptr) return "none";
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  if (f == nullptr) return "unknown";
  ucp_ep_print_info(s.peers[peer].ep, f);
  fclose(f);
  std::string out(buf, len);
  free(buf);
  return out;
}

}  // namespace tandem::comm
