// MetricsHttpServer: serves a Registry's text exposition at GET /metrics over HTTP (cpp-httplib,
// Debian's libcpp-httplib-dev), for Prometheus to scrape.
//
// Start binds host:port (port 0 picks a free one; port() tells which) and serves on its own
// threads until the object is destroyed. The host is the caller's choice; Tandem binds the same
// host as the gRPC server it sits beside. With a `ready` function, GET /ready answers 200 "ready"
// when it returns true and 503 "not ready" otherwise: a plaintext readiness check for an HTTP
// probe where the gRPC port speaks only TLS (docs/deploy.md, "Probes"). Any other path answers
// 404. The registry (and whatever `ready` reads) must outlive the server. Thread-safe: Render()
// is, and `ready` must be.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "metrics/registry.h"

namespace httplib {
class Server;
}

namespace tandem::metrics {

class MetricsHttpServer {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, const Registry* registry,
      std::function<bool()> ready = nullptr);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tandem::metrics
