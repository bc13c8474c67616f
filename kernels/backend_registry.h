// Which compute backends exist in this build and on this machine (ggml's backend-reg pattern).
//
// The built-in registry always holds "cpu" (available) and, when the CUDA backend was compiled,
// "cuda", available only when the CUDA runtime starts and reports a device; otherwise its reason
// says why (e.g. "CUDA driver version is insufficient for CUDA runtime version"). Other registries
// can be built for tests. Probes run on each query (cheap); the registry is thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tandem::kernels {

struct BackendInfo {
  std::string name;         // "cpu", "cuda"
  bool available = false;   // usable on this machine now
  int device_count = 0;     // devices the backend can use (cpu: 1)
  std::string description;  // e.g. the GPU's name, or why it is unavailable
};

class BackendRegistry {
 public:
  using Probe = std::function<BackendInfo()>;

  BackendRegistry() = default;
  // cpu, plus cuda when compiled in. Built once.
  static const BackendRegistry& Builtin();

  // AlreadyExists when the name is taken, InvalidArgument for an empty name or probe.
  absl::Status Register(absl::string_view name, Probe probe);

  // Every registered backend, in registration order, probed now.
  std::vector<BackendInfo> List() const;
  // NotFound for an unknown name; FailedPrecondition (with the probe's description) when known
  // but unavailable.
  absl::StatusOr<BackendInfo> Find(absl::string_view name) const;
  std::vector<std::string> AvailableNames() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, Probe>> entries_ ABSL_GUARDED_BY(mu_);
};

// True when this binary was built with the CUDA backend.
bool CudaBackendCompiled();

}  // namespace tandem::kernels
