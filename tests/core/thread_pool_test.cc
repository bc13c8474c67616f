#include "core/thread_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::core {
namespace {

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  ThreadPool pool(4);
  for (int64_t n : {0, 1, 3, 17, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << i;
  }
}

TEST(ThreadPool, SingleThreadRunsInline) {
  ThreadPool pool(1);
  int64_t total = 0;
  pool.ParallelFor(10, [&](int64_t b, int64_t e) { total += e - b; });
  EXPECT_EQ(total, 10);
}

// Many tiny ParallelFors from several callers at once, each followed by other stack use. A pool
// thread once touched a finished caller's completion latch on its (dead) stack frame, which
// crashed worker processes about once per thousand steps under load. That window is a few
// instructions wide, so this test seldom catches a regression by itself (the serve stress tests
// with TANDEM_TEST_SERVE_ARGS="--collective ucx" did); it does check every chunk runs exactly once.
TEST(ThreadPool, ManyTinyParallelForsFromSeveralCallersAtOnce) {
  ThreadPool pool(4);
  std::vector<std::thread> callers;
  std::atomic<int64_t> wrong{0};
  for (int c = 0; c < 3; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < 20000; ++i) {
        std::atomic<int64_t> sum{0};
        pool.ParallelFor(4 + (i + c) % 5, [&](int64_t b, int64_t e) { sum += e - b; });
        volatile char scribble[256];  // reuse the stack the finished ParallelFor frame used
        for (auto& x : scribble) x = static_cast<char>(i);
        if (sum.load() != 4 + (i + c) % 5) ++wrong;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace tandem::core
