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
#include "core/logging.h"
#include "core/status.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "tandem/worker/v1/worker.grpc.pb.h"
#include "worker/stage_executor.h"
#include "worker/worker_metrics.h"

namespace tandem::worker {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

class WorkerService final : public pb::Worker::Service {
 public:
  // Answers at once, also while a step or a Load runs (from what Load recorded).
  grpc::Status Info(grpc::ServerContext*, const pb::InfoRequest*, pb::InfoResponse* out) override {
    absl::MutexLock lock(&error_mu_);
    *out = info_;
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    out->set_worker_id(absl::StrCat(host, ":", getpid()));
    out->set_state(static_cast<pb::WorkerState>(state_.load()));
    return grpc::Status::OK;
  }

  grpc::Status Load(grpc::ServerContext*, const pb::LoadRequest* req,
                    pb::LoadResponse* out) override {
    absl::MutexLock lock(&mu_);
    if (executor_) {
      // A new coordinator (the previous one restarted without shutting this worker down) takes
      // the worker over: drop the old shard and its communicators, then load afresh.
      TANDEM_LOG(WARNING) << "Load while loaded: dropping the previous shard for a new coordinator";
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
    state_ = pb::WORKER_STATE_READY;
    FillInfo(out->mutable_info());
    {
      absl::MutexLock info_lock(&error_mu_);
      info_ = out->info();
    }
    TANDEM_LOG(INFO) << "rank " << req->rank() << " loaded: layers ["
                     << executor_->shard().layers.begin << ", " << executor_->shard().layers.end
                     << "), " << out->info().weight_bytes() << " weight bytes";
    return grpc::Status::OK;
  }

  grpc::Status Warmup(grpc::ServerContext*, const pb::WarmupRequest*,
                      pb::WarmupResponse*) override {
    absl::MutexLock lock(&mu_);
    if (!executor_) return NotLoaded();
    return grpc::Status::OK;
  }

  grpc::Status Step(grpc::ServerContext*, const pb::StepRequest* req,
                    pb::StepResponse* out) override {
    absl::MutexLock lock(&mu_);
    return RunStep(*req, out);
  }

  grpc::Status StepStream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<pb::StepResponse, pb::StepRequest>* stream) override {
    pb::StepRequest req;
    while (stream->Read(&req)) {
      pb::StepResponse out;
      absl::MutexLock lock(&mu_);
      grpc::Status s = RunStep(req, &out);
      if (!s.ok()) return s;
      if (!stream->Write(out)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status Release(grpc::ServerContext*, const pb::ReleaseRequest* req,
                       pb::ReleaseResponse*) override {
    absl::MutexLock lock(&mu_);
    if (!executor_) return NotLoaded();
    executor_->Release(std::vector<int32_t>(req->slots().begin(), req->slots().end()));
    return grpc::Status::OK;
  }

  grpc::Status Health(grpc::ServerContext*, const pb::HealthRequest*,
                      pb::HealthResponse* out) override {
    // Not under mu_: Health must answer while a step runs.
    out->set_state(static_cast<pb::WorkerState>(state_.load()));
    out->set_last_step_id(last_step_id_.load());
    absl::MutexLock lock(&error_mu_);
    out->set_error(error_);
    return grpc::Status::OK;
  }

  grpc::Status Shutdown(grpc::ServerContext*, const pb::ShutdownRequest*,
                        pb::ShutdownResponse*) override {
    shutdown_ = true;
    return grpc::Status::OK;
  }

  bool shutdown_requested() const { return shutdown_; }

 private:
  grpc::Status NotLoaded() {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the worker has no model: call Load");
  }

  grpc::Status RunStep(const pb::StepRequest& req, pb::StepResponse* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!executor_) return NotLoaded();
    auto r = executor_->Execute(req);
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kUnavailable) {
        state_ = pb::WORKER_STATE_FAILED;
        absl::MutexLock lock(&error_mu_);
        if (error_.empty()) error_ = std::string(r.status().message());
      }
      return ToGrpc(r.status());
    }
    last_step_id_ = req.step_id();
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

  absl::Mutex mu_;
  std::unique_ptr<StageExecutor> executor_ ABSL_GUARDED_BY(mu_);
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
  WorkerService service;
  // The standard grpc.health.v1 service too (SERVING while the process answers), so
  // orchestrators can probe workers with stock gRPC health checks.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
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
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return absl::OkStatus();
}

}  // namespace tandem::worker
