#include "worker/local_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "auth/random.h"
#include "comm/tcp_rendezvous.h"
#include "core/logging.h"
#include "core/status.h"
#include "grpcpp/grpcpp.h"
#include "tandem/worker/v1/worker.grpc.pb.h"
#include "worker/lease_keeper.h"

extern char** environ;

namespace tandem::worker {

namespace pb = ::tandem::worker::v1;
namespace fs = std::filesystem;

// One rank's StepStream: the engine thread writes plans; a reader thread queues the answers.
struct RankStream {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::StepRequest, pb::StepResponse>> stream;
  std::thread reader;
  std::deque<pb::StepResponse> answers;  // under Impl::mu
  bool ended = false;                    // under Impl::mu: the stream closed
  grpc::Status status;                   // under Impl::mu: how it closed
};

struct LocalCluster::Impl {
  LocalClusterOptions options;
  absl::Mutex mu;
  absl::CondVar cv;
  std::vector<std::unique_ptr<RankStream>> streams;  // empty until the first Submit
  struct Pending {
    uint64_t step_id = 0;
    absl::Time deadline;
  };
  std::deque<Pending> in_flight;
  std::unique_ptr<comm::RendezvousServer> rendezvous;
  fs::path work_dir;
  std::vector<std::unique_ptr<pb::Worker::Stub>> stubs;
  std::unique_ptr<LeaseKeeper> lease_keeper;
  std::vector<bool> reaped;
  std::vector<std::string> exit_reason;
  absl::Status detected;                                // under mu: a rank declared dead
  std::function<void(const absl::Status&)> on_failure;  // under mu

  // Records the first failure, wakes Await and runs the callback (under mu, so
  // SetOnFailure(nullptr) waits for it).
  void Detect(absl::Status failure) {
    absl::MutexLock lock(&mu);
    if (!detected.ok()) return;
    TANDEM_LOG(ERROR) << failure;
    detected = std::move(failure);
    cv.SignalAll();
    if (on_failure) on_failure(detected);
  }
};

namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  return "ended";
}

// Whether local process `pid` has exited, without reaping it (the engine thread reaps); "" while it
// runs, else how it ended.
std::string ExitedWithoutReaping(pid_t pid) {
  siginfo_t info{};
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD ? "exited" : "";
  }
  if (info.si_pid != pid) return "";
  if (info.si_code == CLD_EXITED) return absl::StrCat("exited with code ", info.si_status);
  return absl::StrCat("was killed by signal ", info.si_status);
}

std::string LogTail(const fs::path& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > 1500) s = "..." + s.substr(s.size() - 1500);
  return s;
}

// Channels to the workers reconnect within ~1 s of a worker coming back (gRPC's default back-off
// grows to 120 s), so a restarted worker is found again in seconds.
grpc::ChannelArguments WorkerChannelArgs() {
  grpc::ChannelArguments ch;
  ch.SetMaxReceiveMessageSize(256 << 20);
  ch.SetMaxSendMessageSize(256 << 20);
  ch.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  ch.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  ch.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return ch;
}

}  // namespace

absl::StatusOr<std::string> NewCoordinatorId() {
  ASSIGN_OR_RETURN(const std::string nonce, auth::RandomHex(8));
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, ":", getpid(), ":", nonce);
}

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const LocalClusterOptions& options) {
  if (options.tp < 1 || options.pp < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp and pp must be >= 1, got tp=", options.tp, " pp=", options.pp));
  }
  auto cluster = std::unique_ptr<LocalCluster>(new LocalCluster());
  cluster->impl_ = std::make_unique<Impl>();
  Impl& impl = *cluster->impl_;
  impl.options = options;
  const int world = options.tp * options.pp;
  std::string binary = options.tandem_binary;
  if (binary.empty()) {
    std::error_code ec;
    binary = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec) return absl::InternalError("cannot resolve /proc/self/exe");
  }
  char tmpl[] = "/tmp/tandem-cluster-XXXXXX";
  if (!mkdtemp(tmpl)) return absl::InternalError("mkdtemp failed");
  impl.work_dir = tmpl;
  cluster->world_ = world;
  const bool remote = !options.worker_addresses.empty();
  if (remote && static_cast<int>(options.worker_addresses.size()) != world) {
    return absl::InvalidArgumentError(absl::StrCat("workers: ", options.worker_addresses.size(),
                                                   " addresses for tp=", options.tp,
                                                   " x pp=", options.pp, " = ", world, " ranks"));
  }
  ASSIGN_OR_RETURN(impl.rendezvous, comm::RendezvousServer::Start(options.rendezvous_bind, 0));
  const std::string rendezvous_address =
      options.rendezvous_host.empty()
          ? impl.rendezvous->address()
          : absl::StrCat(options.rendezvous_host, ":", impl.rendezvous->port());

  // Group identity: this coordinator's id and the secret the workers check.
  if (!options.coordinator_id.empty()) {
    cluster->credentials_.coordinator_id = options.coordinator_id;
  } else {
    ASSIGN_OR_RETURN(cluster->credentials_.coordinator_id, NewCoordinatorId());
  }
  cluster->credentials_.secret = options.group_secret;
  if (cluster->credentials_.secret.empty()) {
    if (remote) {
      return absl::FailedPreconditionError(absl::StrCat(
          "workers: no group secret for remote workers: give --group-secret-file PATH or set ",
          auth::kGroupSecretEnv, " to the secret the workers were started with"));
    }
    ASSIGN_OR_RETURN(cluster->credentials_.secret, auth::GenerateGroupSecret());
  }
  if (!remote && options.worker_tls.any()) {
    return absl::InvalidArgumentError(
        "worker TLS applies only to remote workers (local workers talk over loopback)");
  }
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials =
      grpc::InsecureChannelCredentials();
  if (options.worker_tls.any()) {
    ASSIGN_OR_RETURN(channel_credentials, auth::TlsChannelCredentials(options.worker_tls));
  }

  // The local workers' environment: ours plus the secret (a process's environment is readable
  // only by its user and root; argv is readable by everyone).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, absl::StrCat(auth::kGroupSecretEnv, "="))) env_strings.push_back(*e);
  }
  env_strings.push_back(absl::StrCat(auth::kGroupSecretEnv, "=", cluster->credentials_.secret));
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const std::string parent = std::to_string(getpid());
  if (!remote) {
    TANDEM_LOG(INFO) << "local workers' logs: " << (impl.work_dir / "rank").string()
                     << "<rank>.log";
  }
  const std::string lease_ttl_ms = std::to_string(absl::ToInt64Milliseconds(options.lease_ttl));
  for (int r = 0; r < world && !remote; ++r) {
    const std::string port_file = (impl.work_dir / absl::StrCat("rank", r, ".port")).string();
    const std::string log_file = (impl.work_dir / absl::StrCat("rank", r, ".log")).string();
    std::vector<std::string> args = {binary,           "worker",    "--listen",     "127.0.0.1:0",
                                     "--port-file",    port_file,   "--parent-pid", parent,
                                     "--lease-ttl-ms", lease_ttl_ms};
    if (options.worker_metrics_port_base >= 0) {
      args.push_back("--metrics-port");
      args.push_back(std::to_string(
          options.worker_metrics_port_base == 0 ? 0 : options.worker_metrics_port_base + r));
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int pgid = cluster->pgid_;
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      setpgid(0, pgid);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    setpgid(pid, pgid);  // also from the parent, so the group exists before we signal it
    if (cluster->pgid_ == 0) cluster->pgid_ = pid;
    cluster->pids_.push_back(pid);
    impl.reaped.push_back(false);
    impl.exit_reason.emplace_back();
  }

  const absl::Time deadline = absl::Now() + options.start_timeout;
  const auto dead_rank = [&]() -> absl::Status {
    for (int r = 0; r < static_cast<int>(cluster->pids_.size()); ++r) {
      int status = 0;
      if (!impl.reaped[r] && waitpid(cluster->pids_[r], &status, WNOHANG) == cluster->pids_[r]) {
        impl.reaped[r] = true;
        impl.exit_reason[r] = DescribeExit(status);
      }
      if (impl.reaped[r]) {
        return absl::UnavailableError(
            absl::StrCat("worker rank ", r, " (pid ", cluster->pids_[r], ") ", impl.exit_reason[r],
                         "; its log:\n", LogTail(impl.work_dir / absl::StrCat("rank", r, ".log"))));
      }
    }
    return absl::OkStatus();
  };
  std::vector<std::string> hosts(world, "");
  for (int r = 0; r < world && remote; ++r) {
    const std::string& a = options.worker_addresses[r];
    const auto colon = a.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == a.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("workers[", r, "]: '", a, "' is not host:port"));
    }
    hosts[r] = a.substr(0, colon);
    grpc::ChannelArguments ch = WorkerChannelArgs();
    cluster->addresses_.push_back(a);
    impl.stubs.push_back(
        pb::Worker::NewStub(grpc::CreateCustomChannel(a, channel_credentials, ch)));
    // Wait (within start_timeout) until the worker answers.
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.set_wait_for_ready(true);
    cluster->credentials_.AttachTo(&ctx);
    pb::InfoResponse info;
    const grpc::Status s = impl.stubs.back()->Info(&ctx, pb::InfoRequest(), &info);
    if (!s.ok()) {
      return core::Annotate(FromGrpc(s), absl::StrCat("worker rank ", r, " at ", a));
    }
  }
  for (int r = 0; r < world && !remote; ++r) {
    const fs::path port_file = impl.work_dir / absl::StrCat("rank", r, ".port");
    int port = 0;
    while (true) {
      std::ifstream f(port_file);
      if (f >> port && port > 0) break;
      RETURN_IF_ERROR(dead_rank());
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("worker rank ", r, " did not start within ",
                         absl::FormatDuration(options.start_timeout)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    grpc::ChannelArguments ch = WorkerChannelArgs();
    cluster->addresses_.push_back(absl::StrCat("127.0.0.1:", port));
    impl.stubs.push_back(pb::Worker::NewStub(grpc::CreateCustomChannel(
        cluster->addresses_.back(), grpc::InsecureChannelCredentials(), ch)));
  }

  RETURN_IF_ERROR(cluster->ClaimAll(deadline));
  {
    // Heartbeat every min(heartbeat_period, lease TTL / 4) (the shortest TTL any rank has) for as
    // long as the cluster lives; it is also the failure detector.
    int64_t ttl_ms = INT64_MAX;
    for (const pb::InfoResponse& info : cluster->infos_) {
      if (info.lease_ttl_ms() > 0) ttl_ms = std::min(ttl_ms, info.lease_ttl_ms());
    }
    if (ttl_ms == INT64_MAX) ttl_ms = absl::ToInt64Milliseconds(options.lease_ttl);
    const absl::Duration period = std::max(
        absl::Milliseconds(10), std::min(options.heartbeat_period, absl::Milliseconds(ttl_ms / 4)));
    std::vector<pb::Worker::Stub*> stubs;
    for (auto& s : impl.stubs) stubs.push_back(s.get());
    auto failing = std::make_shared<std::vector<bool>>(world, false);
    impl.lease_keeper = std::make_unique<LeaseKeeper>(
        std::move(stubs), cluster->credentials_, period,
        [failing, impl = &impl, pids = cluster->pids_, liveness = options.liveness_timeout](
            int rank, const absl::Status& status, absl::Duration silent) {
          if (!(*failing)[rank]) {
            TANDEM_LOG(WARNING) << "worker rank " << rank << ": " << status;
            (*failing)[rank] = true;
          }
          const std::string exited =
              rank < static_cast<int>(pids.size()) ? ExitedWithoutReaping(pids[rank]) : "";
          if (!exited.empty()) {
            impl->Detect(
                absl::UnavailableError(absl::StrCat("worker rank ", rank, " (pid ", pids[rank],
                                                    ") ", exited, " (", status.message(), ")")));
          } else if (silent >= liveness) {
            impl->Detect(absl::UnavailableError(
                absl::StrCat("worker rank ", rank, " did not answer heartbeats for ",
                             absl::FormatDuration(silent), " (liveness timeout ",
                             absl::FormatDuration(liveness), "): ", status.message())));
          }
        },
        options.heartbeat_timeout);
  }

  // Load every rank at once: they rendezvous with each other.
  if (options.on_loading) options.on_loading();
  cluster->infos_.resize(world);
  std::vector<grpc::Status> statuses(world);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(world);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    pb::LoadRequest req;
    req.set_model_dir(options.model_dir);
    req.set_tp(options.tp);
    req.set_pp(options.pp);
    req.set_rank(r);
    for (int64_t n : options.stage_layers) req.add_stage_layers(n);
    req.set_rendezvous(rendezvous_address);
    if (!hosts[r].empty() && hosts[r] != "localhost") req.set_advertise_host(hosts[r]);
    req.set_rendezvous_prefix("local");
    req.mutable_capacity()->set_num_slots(options.num_slots);
    req.mutable_capacity()->set_num_blocks(options.num_blocks);
    req.mutable_capacity()->set_block_size(options.block_size);
    req.mutable_capacity()->set_num_snapshots(options.num_snapshots);
    req.set_snapshot_pool_bytes(options.snapshot_pool_bytes);
    req.set_comm_timeout_ms(absl::ToInt64Milliseconds(options.comm_timeout));
    req.set_collective(options.collective);
    req.set_reference_kernels(options.reference_kernels);
    contexts[r] = std::make_unique<grpc::ClientContext>();
    contexts[r]->set_deadline(absl::ToChronoTime(deadline));
    cluster->credentials_.AttachTo(contexts[r].get());
    threads.emplace_back([&, r, req] {
      pb::LoadResponse resp;
      statuses[r] = impl.stubs[r]->Load(contexts[r].get(), req, &resp);
      cluster->infos_[r] = resp.info();
      if (statuses[r].ok() && options.on_rank_loaded) options.on_rank_loaded(r, resp.info());
      ++done;
    });
  }
  absl::Status watch;
  while (done.load() < world) {
    if (watch.ok()) {
      watch = dead_rank();
      if (!watch.ok()) {
        for (auto& c : contexts) c->TryCancel();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& t : threads) t.join();
  RETURN_IF_ERROR(watch);
  for (int r = 0; r < world; ++r) {
    if (!statuses[r].ok()) {
      return core::Annotate(FromGrpc(statuses[r]), absl::StrCat("loading worker rank ", r));
    }
  }
  cluster->answering_rank_ = (options.pp - 1) * options.tp;
  return cluster;
}

absl::Status LocalCluster::ClaimAll(absl::Time deadline) {
  Impl& impl = *impl_;
  const int world = world_size();
  infos_.assign(world, pb::InfoResponse());
  bool told = false;
  while (true) {
    // Every rank's current epoch (Info needs only the secret); the new epoch is above them all.
    uint64_t epoch = 0;
    for (int r = 0; r < world; ++r) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      ctx.set_wait_for_ready(true);
      credentials_.AttachTo(&ctx);
      const grpc::Status s = impl.stubs[r]->Info(&ctx, pb::InfoRequest(), &infos_[r]);
      if (!s.ok()) {
        return core::Annotate(FromGrpc(s), absl::StrCat("worker rank ", r, " at ", addresses_[r]));
      }
      epoch = std::max(epoch, infos_[r].epoch());
    }
    credentials_.epoch = epoch + 1;
    absl::Status refused;
    for (int r = 0; r < world && refused.ok(); ++r) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      credentials_.AttachTo(&ctx);
      pb::ClaimRequest req;
      req.set_coordinator_id(credentials_.coordinator_id);
      req.set_epoch(credentials_.epoch);
      pb::ClaimResponse resp;
      const grpc::Status s = impl.stubs[r]->Claim(&ctx, req, &resp);
      if (s.ok()) {
        infos_[r] = resp.info();
        continue;
      }
      refused = core::Annotate(FromGrpc(s), absl::StrCat("worker rank ", r, " at ", addresses_[r]));
    }
    if (refused.ok()) return absl::OkStatus();
    // Owned by a live coordinator (or a racing claim took the epoch): wait for its lease to
    // lapse, within the start deadline.
    if (refused.code() != absl::StatusCode::kFailedPrecondition || absl::Now() > deadline) {
      return refused;
    }
    if (!told) {
      TANDEM_LOG(WARNING) << refused << "; retrying until the start timeout";
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

absl::StatusOr<pb::StepResponse> LocalCluster::Step(pb::StepRequest request) {
  if (!impl_->in_flight.empty()) {
    return absl::FailedPreconditionError("Step while plans submitted with Submit are in flight");
  }
  RETURN_IF_ERROR(Submit(std::move(request)));
  return Await();
}

int LocalCluster::in_flight() const { return static_cast<int>(impl_->in_flight.size()); }

absl::Status LocalCluster::Submit(pb::StepRequest request) {
  if (failed_) return absl::FailedPreconditionError("the cluster failed earlier");
  Impl& impl = *impl_;
  if (absl::Status dead = detected_failure(); !dead.ok()) {
    failed_ = true;
    return dead;
  }
  const int world = world_size();
  if (impl.streams.empty()) {
    for (int r = 0; r < world; ++r) {
      auto rs = std::make_unique<RankStream>();
      rs->context = std::make_unique<grpc::ClientContext>();
      credentials_.AttachTo(rs->context.get());
      rs->stream = impl.stubs[r]->StepStream(rs->context.get());
      RankStream* raw = rs.get();
      rs->reader = std::thread([&impl, raw] {
        pb::StepResponse answer;
        while (raw->stream->Read(&answer)) {
          absl::MutexLock lock(&impl.mu);
          raw->answers.push_back(std::move(answer));
          impl.cv.SignalAll();
        }
        grpc::Status status = raw->stream->Finish();
        absl::MutexLock lock(&impl.mu);
        raw->ended = true;
        raw->status = std::move(status);
        impl.cv.SignalAll();
      });
      impl.streams.push_back(std::move(rs));
    }
  }
  request.set_step_id(next_step_id_++);
  // A failed write means the stream closed; its reader reports why, and Await fails the step.
  for (int r = 0; r < world; ++r) (void)impl.streams[r]->stream->Write(request);
  impl.in_flight.push_back({request.step_id(), absl::Now() + impl.options.step_timeout});
  return absl::OkStatus();
}

absl::StatusOr<pb::StepResponse> LocalCluster::Await() {
  absl::StatusOr<std::optional<pb::StepResponse>> r = Poll(absl::InfiniteDuration());
  if (!r.ok()) return r.status();
  return std::move(**r);
}

absl::StatusOr<std::optional<pb::StepResponse>> LocalCluster::Poll(absl::Duration max_wait) {
  const absl::Time wait_until = absl::Now() + max_wait;
  if (failed_) return absl::FailedPreconditionError("the cluster failed earlier");
  Impl& impl = *impl_;
  if (impl.in_flight.empty()) return absl::FailedPreconditionError("no step is in flight");
  const int world = world_size();
  const Impl::Pending step = impl.in_flight.front();
  // A rank whose stream closed without answering this step failed it.
  const auto first_error = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl.mu) -> absl::Status {
    for (int r = 0; r < world; ++r) {
      const RankStream& rs = *impl.streams[r];
      if (rs.answers.empty() && rs.ended) {
        absl::Status s = FromGrpc(rs.status);
        if (s.ok()) s = absl::UnavailableError("its step stream closed");
        return core::Annotate(s, absl::StrCat("worker rank ", r, " (step ", step.step_id, ")"));
      }
    }
    return absl::OkStatus();
  };
  absl::Status failure;
  while (true) {
    failure = ReapDead(step.step_id);
    bool all = true;
    {
      absl::MutexLock lock(&impl.mu);
      if (failure.ok()) failure = impl.detected;
      if (failure.ok()) failure = first_error();
      for (int r = 0; r < world; ++r) all = all && !impl.streams[r]->answers.empty();
      if (failure.ok() && !all && absl::Now() < wait_until) {
        // Wake on any answer, or every 5 ms to watch the processes.
        impl.cv.WaitWithTimeout(&impl.mu, absl::Milliseconds(5));
        continue;
      }
    }
    if (failure.ok() && !all && absl::Now() <= step.deadline) return std::nullopt;
    if (failure.ok() && all) break;
    if (failure.ok() && absl::Now() > step.deadline) {
      failure = absl::DeadlineExceededError(
          absl::StrCat("step ", step.step_id, " was not answered within ",
                       absl::FormatDuration(impl.options.step_timeout)));
    }
    if (!failure.ok()) break;
  }
  if (!failure.ok()) {
    // Peers of a dead rank usually report first; the root cause is the dead rank, so look for one
    // for up to 300 ms before blaming the rank that answered (not for a rejected plan).
    // The heartbeat's verdict is final (a frozen rank never reports), so no waiting then.
    if (failure.code() != absl::StatusCode::kInvalidArgument && detected_failure().ok()) {
      for (int i = 0; i < 60; ++i) {
        absl::Status death = ReapDead(step.step_id);
        if (!death.ok()) {
          failure = death;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    const bool only_step = impl.in_flight.size() == 1;
    CloseStreams();
    impl.in_flight.clear();
    // A rejected plan (INVALID_ARGUMENT from validation) leaves the replica usable: the next
    // Submit opens new streams. Anything else, or plans lost behind it, breaks the cluster.
    if (failure.code() != absl::StatusCode::kInvalidArgument || !only_step) failed_ = true;
    return failure;
  }
  impl.in_flight.pop_front();
  std::vector<pb::StepResponse> answers(world);
  {
    absl::MutexLock lock(&impl.mu);
    for (int r = 0; r < world; ++r) {
      answers[r] = std::move(impl.streams[r]->answers.front());
      impl.streams[r]->answers.pop_front();
    }
  }
  for (int r = 0; r < world; ++r) {
    if (answers[r].step_id() != step.step_id) {
      failed_ = true;
      CloseStreams();
      return absl::InternalError(absl::StrCat("worker rank ", r, " answered step ",
                                              answers[r].step_id(), " when step ", step.step_id,
                                              " was expected"));
    }
  }
  return std::optional<pb::StepResponse>(std::move(answers[answering_rank_]));
}

void LocalCluster::SetOnFailure(std::function<void(const absl::Status&)> fn) {
  Impl& impl = *impl_;
  absl::MutexLock lock(&impl.mu);
  impl.on_failure = std::move(fn);
  if (!impl.detected.ok() && impl.on_failure) impl.on_failure(impl.detected);
}

absl::Status LocalCluster::detected_failure() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->detected;
}

void LocalCluster::CloseStreams() {
  Impl& impl = *impl_;
  for (auto& rs : impl.streams) rs->context->TryCancel();
  for (auto& rs : impl.streams) {
    if (rs->reader.joinable()) rs->reader.join();
  }
  impl.streams.clear();
}

absl::Status LocalCluster::ReapDead(uint64_t step_id) {
  Impl& impl = *impl_;
  for (int r = 0; r < static_cast<int>(pids_.size()); ++r) {
    int status = 0;
    if (!impl.reaped[r] && waitpid(pids_[r], &status, WNOHANG) == pids_[r]) {
      impl.reaped[r] = true;
      impl.exit_reason[r] = DescribeExit(status);
    }
    if (impl.reaped[r]) {
      return absl::UnavailableError(absl::StrCat("worker rank ", r, " (pid ", pids_[r], ") ",
                                                 impl.exit_reason[r], " during step ", step_id));
    }
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::Release(const std::vector<int32_t>& slots) {
  pb::ReleaseRequest req;
  for (int32_t s : slots) req.add_slots(s);
  for (int r = 0; r < world_size(); ++r) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    credentials_.AttachTo(&ctx);
    pb::ReleaseResponse resp;
    RETURN_IF_ERROR(core::Annotate(FromGrpc(impl_->stubs[r]->Release(&ctx, req, &resp)),
                                   absl::StrCat("worker rank ", r)));
  }
  return absl::OkStatus();
}

void LocalCluster::Discard() { Teardown(/*graceful=*/false); }

void LocalCluster::Teardown(bool graceful) {
  if (!impl_) return;
  CloseStreams();
  Impl& impl = *impl_;
  if (impl.lease_keeper) impl.lease_keeper->Stop();
  // Only local workers are asked to exit: a remote worker outlives its coordinator (its lease
  // lapses and it waits for the next one), so an orchestrator does not restart it in a loop.
  for (size_t r = 0; r < impl.stubs.size() && local() && graceful; ++r) {
    if (r < impl.reaped.size() && impl.reaped[r]) continue;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    credentials_.AttachTo(&ctx);
    pb::ShutdownResponse resp;
    (void)impl.stubs[r]->Shutdown(&ctx, pb::ShutdownRequest(), &resp);
  }
  // Give them a moment to exit cleanly, then kill whatever is left of the group.
  const absl::Time deadline = absl::Now() + (graceful ? absl::Seconds(3) : absl::ZeroDuration());
  while (absl::Now() < deadline) {
    bool all = true;
    for (size_t r = 0; r < pids_.size(); ++r) {
      int status = 0;
      if (!impl.reaped[r] && waitpid(pids_[r], &status, WNOHANG) == pids_[r]) impl.reaped[r] = true;
      all = all && impl.reaped[r];
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (pgid_ > 0) kill(-pgid_, SIGKILL);
  for (size_t r = 0; r < pids_.size(); ++r) {
    if (!impl.reaped[r]) {
      int status = 0;
      waitpid(pids_[r], &status, 0);
      impl.reaped[r] = true;
    }
  }
  if (impl.rendezvous) impl.rendezvous->Stop();
  std::error_code ec;
  if (!impl.work_dir.empty() && std::getenv("TANDEM_KEEP_CLUSTER_DIR") == nullptr) {
    fs::remove_all(impl.work_dir, ec);
  }
  impl_.reset();
}

LocalCluster::~LocalCluster() { Teardown(/*graceful=*/true); }

}  // namespace tandem::worker
