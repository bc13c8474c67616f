#include "worker/worker_server.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "auth/group_identity.h"
#include "core/logging.h"
#include "core/status.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "tandem/worker/v1/worker.grpc.pb.h"
#include "worker/lease.h"
#include "worker/stage_executor.h"
#include "worker/step_log.h"
#include "worker/worker_metrics.h"

namespace tandem::worker {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// Who may call what (DESIGN.md §8): kMember needs the group secret; kOwner also the owner's
// coordinator id and current epoch (renewing its lease).
enum class Access { kMember, kOwner };

class WorkerService final : public pb::Worker::Service {
 public:
  WorkerService(std::string secret, absl::Duration lease_ttl)
      : secret_(std::move(secret)), lease_(lease_ttl) {}

  // Answers at once, also while a step or a Load runs (from what Load recorded).
  grpc::Status Info(grpc::ServerContext* ctx, const pb::InfoRequest*,
                    pb::InfoResponse* out) override {
    if (grpc::Status s = Admit(*ctx, Access::kMember); !s.ok()) return s;
    FillCurrentInfo(out);
    return grpc::Status::OK;
  }

  grpc::Status Claim(grpc::ServerContext* ctx, const pb::ClaimRequest* req,
                     pb::ClaimResponse* out) override {
    if (grpc::Status s = Admit(*ctx, Access::kMember); !s.ok()) return s;
    const uint64_t previous_epoch = lease_.Get(absl::Now()).epoch;
    const absl::Status claimed = lease_.Claim(req->coordinator_id(), req->epoch(), absl::Now());
    if (!claimed.ok()) {
      TANDEM_LOG(WARNING) << claimed.message();
      return ToGrpc(claimed);
    }
    if (req->epoch() > previous_epoch) {
      // A new group is forming (a rebuild after a failure, or a takeover): the old group's step
      // may be stuck waiting for a dead peer; free it now, so the Load that follows does not wait
      // for the communication timeout.
      absl::MutexLock lock(&interrupt_mu_);
      if (interruptible_ != nullptr) {
        interruptible_->AbortCommunication(
            absl::UnavailableError(absl::StrCat("a new group is forming at epoch ", req->epoch())));
      }
    }
    TANDEM_LOG(INFO) << "claimed by coordinator '" << req->coordinator_id() << "' at epoch "
                     << req->epoch();
    FillCurrentInfo(out->mutable_info());
    return grpc::Status::OK;
  }

  grpc::Status Load(grpc::ServerContext* ctx, const pb::LoadRequest* request,
                    pb::LoadResponse* out) override {
    if (grpc::Status s = Admit(*ctx, Access::kOwner); !s.ok()) return s;
    // Every rendezvous of this incarnation is tagged with the owner's epoch, so ranks of an
    // older (or a competing) group can never meet ranks of this one.
    pb::LoadRequest tagged = *request;
    tagged.set_rendezvous_prefix(
        absl::StrCat(request->rendezvous_prefix().empty() ? "tandem" : request->rendezvous_prefix(),
                     "/epoch", auth::IdentityOf(*ctx).epoch));
    const pb::LoadRequest* req = &tagged;
    absl::MutexLock lock(&mu_);
    if (executor_) {
      // A new group (a rebuild, or a new coordinator taking the worker over): drop the old shard
      // and its communicators, then load afresh.
      TANDEM_LOG(WARNING) << "Load while loaded: dropping the previous shard for a new group";
      {
        absl::MutexLock interrupt_lock(&interrupt_mu_);
        interruptible_ = nullptr;
      }
      executor_.reset();
    }
    state_ = pb::WORKER_STATE_LOADING;
    core::SetLogRank(req->rank());
    auto ex = StageExecutor::Create(*req);
    if (!ex.ok()) {
      state_ = pb::WORKER_STATE_FAILED;
      error_ = std::string(ex.status().message());
      TANDEM_LOG(ERROR) << "load failed: " << ex.status();
      return ToGrpc(ex.status());
    }
    executor_ = std::move(*ex);
    {
      absl::MutexLock interrupt_lock(&interrupt_mu_);
      interruptible_ = executor_.get();
    }
    state_ = pb::WORKER_STATE_READY;
    FillInfo(out->mutable_info());
    {
      absl::MutexLock info_lock(&error_mu_);
      info_ = out->info();
    }
    FillCurrentInfo(out->mutable_info());
    TANDEM_LOG(INFO) << "rank " << req->rank() << " loaded: layers ["
                     << executor_->shard().layers.begin << ", " << executor_->shard().layers.end
                     << "), " << out->info().weight_bytes() << " weight bytes";
    return grpc::Status::OK;
  }

  grpc::Status Warmup(grpc::ServerContext* ctx, const pb::WarmupRequest*,
                      pb::WarmupResponse*) override {
    if (grpc::Status s = Admit(*ctx, Access::kOwner); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    if (!executor_) return NotLoaded();
    return grpc::Status::OK;
  }

  grpc::Status Step(grpc::ServerContext* ctx, const pb::StepRequest* req,
                    pb::StepResponse* out) override {
    if (grpc::Status s = Admit(*ctx, Access::kOwner); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    return RunStep(*req, out);
  }

  grpc::Status StepStream(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<pb::StepResponse, pb::StepRequest>* stream) override {
    if (grpc::Status s = Admit(*ctx, Access::kOwner); !s.ok()) return s;
    const auth::CallIdentity id = auth::IdentityOf(*ctx);
    pb::StepRequest req;
    while (stream->Read(&req)) {
      // The stream's epoch must still be the owner's: a stream of a coordinator that was taken
      // over ends here instead of running a stale plan.
      const absl::Status current = lease_.Check(id.coordinator_id, id.epoch, absl::Now());
      if (!current.ok()) return ToGrpc(current);
      pb::StepResponse out;
      absl::MutexLock lock(&mu_);
      grpc::Status s = RunStep(req, &out);
      if (!s.ok()) return s;
      if (!stream->Write(out)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status Release(grpc::ServerContext* ctx, const pb::ReleaseRequest* req,
                       pb::ReleaseResponse*) override {
    if (grpc::Status s = Admit(*ctx, Access::kOwner); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    if (!executor_) return NotLoaded();
    executor_->Release(std::vector<int32_t>(req->slots().begin(), req->slots().end()));
    return grpc::Status::OK;
  }

  // From the owner (a call naming a coordinator), Health is the heartbeat that renews its lease
  // and fails once another coordinator took over; without a coordinator id it only reads.
  grpc::Status Health(grpc::ServerContext* ctx, const pb::HealthRequest*,
                      pb::HealthResponse* out) override {
    const bool heartbeat = !auth::IdentityOf(*ctx).coordinator_id.empty();
    if (grpc::Status s = Admit(*ctx, heartbeat ? Access::kOwner : Access::kMember); !s.ok()) {
      return s;
    }
    // Not under mu_: Health must answer while a step runs.
    out->set_state(static_cast<pb::WorkerState>(state_.load()));
    out->set_last_step_id(last_step_id_.load());
    absl::MutexLock lock(&error_mu_);
    out->set_error(error_);
    return grpc::Status::OK;
  }

  grpc::Status Shutdown(grpc::ServerContext* ctx, const pb::ShutdownRequest*,
                        pb::ShutdownResponse*) override {
    if (grpc::Status s = Admit(*ctx, Access::kOwner); !s.ok()) return s;
    shutdown_ = true;
    return grpc::Status::OK;
  }

  bool shutdown_requested() const { return shutdown_; }

 private:
  // The one gate of every RPC, before it does anything. The secret is compared in constant time
  // and never logged.
  grpc::Status Admit(const grpc::ServerContext& ctx, Access access) {
    const auth::CallIdentity id = auth::IdentityOf(ctx);
    if (!auth::ConstantTimeEquals(id.secret, secret_)) {
      return ToGrpc(absl::UnauthenticatedError(
          absl::StrCat("missing or wrong group secret (metadata ", auth::kGroupSecretKey, ")")));
    }
    if (access == Access::kMember) return grpc::Status::OK;
    if (!id.has_epoch) {
      return ToGrpc(absl::FailedPreconditionError(
          absl::StrCat("no lease epoch (metadata ", auth::kEpochKey, "): Claim the worker first")));
    }
    return ToGrpc(lease_.Check(id.coordinator_id, id.epoch, absl::Now()));
  }

  void FillCurrentInfo(pb::InfoResponse* out) {
    {
      absl::MutexLock lock(&error_mu_);
      *out = info_;
    }
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    out->set_worker_id(absl::StrCat(host, ":", getpid()));
    out->set_state(static_cast<pb::WorkerState>(state_.load()));
    const WorkerLease::State lease = lease_.Get(absl::Now());
    out->set_owner(lease.owner);
    out->set_epoch(lease.epoch);
    out->set_lease_ttl_ms(absl::ToInt64Milliseconds(lease_.ttl()));
    out->set_lease_remaining_ms(absl::ToInt64Milliseconds(lease.remaining));
  }

  grpc::Status NotLoaded() {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the worker has no model: call Load");
  }

  grpc::Status RunStep(const pb::StepRequest& req, pb::StepResponse* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!executor_) return NotLoaded();
    auto r = executor_->Execute(req);
    if (!r.ok()) {
      LogStepFailed(req, r.status());
      if (r.status().code() == absl::StatusCode::kUnavailable) {
        state_ = pb::WORKER_STATE_FAILED;
        absl::MutexLock lock(&error_mu_);
        if (error_.empty()) error_ = std::string(r.status().message());
      }
      return ToGrpc(r.status());
    }
    last_step_id_ = req.step_id();
    LogStepDone(req, *r);
    *out = std::move(*r);
    return grpc::Status::OK;
  }

  void FillInfo(pb::InfoResponse* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    out->set_worker_id(absl::StrCat(host, ":", getpid()));
    out->set_state(static_cast<pb::WorkerState>(state_.load()));
    if (executor_) executor_->FillInfo(out);
  }

  const std::string secret_;
  WorkerLease lease_;
  absl::Mutex mu_;
  std::unique_ptr<StageExecutor> executor_ ABSL_GUARDED_BY(mu_);
  // The loaded executor, for Claim to interrupt a stuck step without taking mu_ (cleared before
  // the executor goes).
  absl::Mutex interrupt_mu_;
  StageExecutor* interruptible_ ABSL_GUARDED_BY(interrupt_mu_) = nullptr;
  std::atomic<int> state_{pb::WORKER_STATE_WAITING};
  std::atomic<uint64_t> last_step_id_{0};
  std::atomic<bool> shutdown_{false};
  absl::Mutex error_mu_;
  std::string error_ ABSL_GUARDED_BY(error_mu_);
  pb::InfoResponse info_ ABSL_GUARDED_BY(error_mu_);  // as of Load
};

absl::Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << port << "\n";
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

absl::Status RunWorkerServer(const WorkerServerOptions& options) {
  if (options.group_secret.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no group secret: give --group-secret-file PATH or set ", auth::kGroupSecretEnv,
        " (the same secret as the coordinator's; `tandem serve` generates one for the workers it "
        "starts itself). A worker never runs without one: anyone who can reach its port could "
        "otherwise drive it"));
  }
  if (options.lease_ttl < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError(absl::StrCat("--lease-ttl-ms ",
                                                   absl::ToInt64Milliseconds(options.lease_ttl),
                                                   " is below the minimum of 100"));
  }
  // SIGTERM and SIGINT end the worker cleanly with status 0, also as PID 1 in a container (which
  // has no default action for them): blocked here, before the gRPC server starts its threads, and
  // taken by sigtimedwait in the loop below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (options.tls.any()) {
    if (options.tls.ca.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.tls.flag_prefix,
          "ca is required with TLS on a worker: the control plane is "
          "mutual TLS (only the coordinator's certificate, signed by that CA, gets through)"));
    }
    ASSIGN_OR_RETURN(credentials, auth::TlsServerCredentials(options.tls));
  }
  WorkerService service(options.group_secret, options.lease_ttl);
  // The standard grpc.health.v1 service too (SERVING while the process answers), so
  // orchestrators can probe workers with stock gRPC health checks.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, credentials, &port);
  // A port in use is an error, not a second worker sharing it (gRPC sets SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen,
                                               " (in use, or not an address of this host)"));
  }
  std::unique_ptr<metrics::MetricsHttpServer> metrics_server;
  if (options.metrics_port >= 0) {
    ASSIGN_OR_RETURN(metrics_server,
                     StartWorkerMetricsServer(options.listen, options.metrics_port));
  }
  if (!options.port_file.empty()) RETURN_IF_ERROR(WritePortFile(options.port_file, port));
  TANDEM_LOG(INFO) << "worker " << getpid() << " serving tandem.worker.v1 on port " << port;
  while (!service.shutdown_requested()) {
    if (options.parent_pid > 0 && kill(options.parent_pid, 0) != 0) {
      TANDEM_LOG(WARNING) << "parent " << options.parent_pid << " is gone; exiting";
      break;
    }
    const timespec tick = {0, 50 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig > 0) {
      TANDEM_LOG(INFO) << "signal " << sig << ", shutting down";
      break;
    }
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return absl::OkStatus();
}

}  // namespace tandem::worker
