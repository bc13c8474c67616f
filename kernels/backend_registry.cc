#include "kernels/backend_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"

#if TANDEM_KERNELS_WITH_CUDA
#include "kernels/cuda/device.h"
#endif

namespace tandem::kernels {

namespace {

BackendInfo ProbeCpu() { return {"cpu", true, 1, "host CPU (reference and fast CPU kernels)"}; }

#if TANDEM_KERNELS_WITH_CUDA
BackendInfo ProbeCuda() {
  BackendInfo info{"cuda", false, 0, ""};
  absl::StatusOr<int> count = cuda::DeviceCount();
  if (!count.ok()) {
    info.description = std::string(count.status().message());
    return info;
  }
  if (*count == 0) {
    info.description = "no CUDA device";
    return info;
  }
  info.available = true;
  info.device_count = *count;
  absl::StatusOr<cuda::DeviceInfo> dev = cuda::GetDeviceInfo(0);
  info.description = dev.ok() ? absl::StrCat(dev->name, " (sm_", dev->major, dev->minor, ")")
                              : std::string(dev.status().message());
  return info;
}
#endif

}  // namespace

bool CudaBackendCompiled() { return TANDEM_KERNELS_WITH_CUDA != 0; }

const BackendRegistry& BackendRegistry::Builtin() {
  static const BackendRegistry* registry = [] {
    auto* r = new BackendRegistry();
    (void)r->Register("cpu", ProbeCpu);
#if TANDEM_KERNELS_WITH_CUDA
    (void)r->Register("cuda", ProbeCuda);
#endif
    return r;
  }();
  return *registry;
}

absl::Status BackendRegistry::Register(absl::string_view name, Probe probe) {
  if (name.empty() || !probe) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend registry: empty name or probe for '", name, "'"));
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [existing, unused] : entries_) {
    if (existing == name) {
      return absl::AlreadyExistsError(absl::StrCat("backend '", name, "' already registered"));
    }
  }
  entries_.emplace_back(std::string(name), std::move(probe));
  return absl::OkStatus();
}

std::vector<BackendInfo> BackendRegistry::List() const {
  std::vector<std::pair<std::string, Probe>> entries;
  {
    absl::MutexLock lock(&mu_);
    entries = entries_;
  }
  std::vector<BackendInfo> out;
  for (const auto& [name, probe] : entries) {
    BackendInfo info = probe();
    info.name = name;
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<BackendInfo> BackendRegistry::Find(absl::string_view name) const {
  Probe probe;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [existing, p] : entries_) {
      if (existing == name) probe = p;
    }
  }
  if (!probe) {
    return absl::NotFoundError(
        absl::StrCat("backend '", name, "' is not compiled into this build"));
  }
  BackendInfo info = probe();
  info.name = std::string(name);
  if (!info.available) {
    return absl::FailedPreconditionError(
        absl::StrCat("backend '", name, "' is unavailable: ", info.description));
  }
  return info;
}

std::vector<std::string> BackendRegistry::AvailableNames() const {
  std::vector<std::string> names;
  for (const BackendInfo& info : List()) {
    if (info.available) names.push_back(info.name);
  }
  return names;
}

}  // namespace tandem::kernels
