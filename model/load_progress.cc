#include "model/load_progress.h"

#include <cstdio>

#include "core/logging.h"

namespace tandem::model {
namespace {

double MiB(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

}  // namespace

LoadProgress::LoadProgress(int64_t total_layers, std::chrono::steady_clock::duration interval)
    : total_layers_(total_layers),
      interval_(interval),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void LoadProgress::Update(int64_t layers_done, uint64_t bytes_read, int64_t tensors) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < interval_) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = layers_done > 0
                         ? elapsed * static_cast<double>(total_layers_ - layers_done) / layers_done
                         : 0.0;
  char line[256];
  std::snprintf(line, sizeof(line),
                "loading weights: %lld/%lld layers, %.1f MiB, %lld tensors, %.1f MiB/s, ETA %.0f s",
                static_cast<long long>(layers_done), static_cast<long long>(total_layers_),
                MiB(bytes_read), static_cast<long long>(tensors),
                elapsed > 0 ? MiB(bytes_read) / elapsed : 0.0, eta);
  TANDEM_LOG(INFO) << line;
}

void LoadProgress::Finish(uint64_t bytes_read, int64_t tensors) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  char line[256];
  std::snprintf(line, sizeof(line),
                "loaded weights: %lld layers, %.1f MiB, %lld tensors in %.2f s (%.1f MiB/s)",
                static_cast<long long>(total_layers_), MiB(bytes_read),
                static_cast<long long>(tensors), elapsed,
                elapsed > 0 ? MiB(bytes_read) / elapsed : 0.0);
  TANDEM_LOG(INFO) << line;
}

}  // namespace tandem::model
