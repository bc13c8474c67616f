#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>

#include "core/cpu_quota.h"

namespace tandem::core {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = AvailableCpus();
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_ && queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t min_grain) {
  if (n <= 0) return;
  const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, min_grain));
  const int64_t chunks = std::min<int64_t>(size(), max_chunks);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  // The chunks still running on pool threads. It is decremented and signalled under done_mu, so
  // the caller cannot see zero, return and destroy these locals while a pool thread still
  // touches them (with an atomic decrement outside the lock it could, which corrupted the
  // caller's stack: a rare crash under load).
  int64_t remaining = chunks - 1;
  std::mutex done_mu;
  std::condition_variable done_cv;
  const int64_t step = (n + chunks - 1) / chunks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t c = 1; c < chunks; ++c) {
      const int64_t b = c * step, e = std::min(n, b + step);
      queue_.emplace_back([&, b, e] {
        if (b < e) fn(b, e);
        std::lock_guard<std::mutex> l(done_mu);
        if (--remaining == 0) done_cv.notify_one();
      });
    }
  }
  cv_.notify_all();
  fn(0, std::min(n, step));
  std::unique_lock<std::mutex> lock(done_mu);
  done_cv.wait(lock, [&] { return remaining == 0; });
}

ThreadPool& ThreadPool::Default() {
  static ThreadPool* pool = [] {
    int n = 0;
    if (const char* env = std::getenv("TANDEM_NUM_THREADS")) n = std::atoi(env);
    return new ThreadPool(n);
  }();
  return *pool;
}

}  // namespace tandem::core
