#include "metrics/http_exporter.h"

#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace tandem::metrics {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, const Registry* registry, std::function<bool()> ready) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port ", port, " is outside [0, 65535]"));
  }
  auto out = std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer());
  out->server_ = std::make_unique<httplib::Server>();
  out->server_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (ready) {
    out->server_->Get(
        "/ready", [ready = std::move(ready)](const httplib::Request&, httplib::Response& res) {
          const bool ok = ready();
          res.status = ok ? 200 : 503;
          res.set_content(ok ? "ready\n" : "not ready\n", "text/plain; charset=utf-8");
        });
  }
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second
  // server bind a port that is in use and split the scrapes between the two.
  out->server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Two threads are plenty for a scraper or two (the default is one per core).
  out->server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  if (port == 0) {
    out->port_ = out->server_->bind_to_any_port(host);
  } else if (out->server_->bind_to_port(host, port)) {
    out->port_ = port;
  }
  if (out->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", host, ":", port,
                                               " (in use, or not an address "
                                               "of this machine)"));
  }
  httplib::Server* server = out->server_.get();
  out->thread_ = std::thread([server] { server->listen_after_bind(); });
  // Until the loop runs, stop() would be a no-op and the destructor's join would hang.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server->is_running() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return out;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tandem::metrics
