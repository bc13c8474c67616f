// A fixed-size thread pool with a blocking ParallelFor.
//
// ParallelFor(n, fn) splits [0, n) into contiguous ranges, runs fn(begin, end) on the pool's
// threads and the calling thread, and returns when all ranges are done. Thread-safe: several
// callers may share one pool (their work interleaves). A pool of 1 thread runs inline.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::core {

class ThreadPool {
 public:
  // num_threads <= 0 means AvailableCpus() (core/cpu_quota.h: affinity and cgroup CPU quota).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                   int64_t min_grain = 1);

  // A process-wide pool sized by TANDEM_NUM_THREADS (`tandem worker --threads`) or
  // AvailableCpus().
  static ThreadPool& Default();

 private:
  void Loop();
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
};

}  // namespace tandem::core
