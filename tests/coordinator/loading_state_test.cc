#include "coordinator/loading_state.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

TEST(LoadingStateTest, CountsRanksAndBytesAndNamesThePhaseInTheReason) {
  LoadingState state(4);
  LoadingStatus st = state.Get();
  EXPECT_EQ(st.ranks_total, 4);
  EXPECT_EQ(st.ranks_loaded, 0);
  EXPECT_FALSE(st.workers_up);
  EXPECT_EQ(st.Reason(),
            "loading the model (0 of 4 ranks loaded; waiting for the workers to start)");
  state.WorkersUp();
  EXPECT_EQ(state.Get().Reason(), "loading the model (0 of 4 ranks loaded)");
  state.RankLoaded(1000);
  state.RankLoaded(24);
  st = state.Get();
  EXPECT_EQ(st.ranks_loaded, 2);
  EXPECT_EQ(st.bytes_loaded, 1024);
  EXPECT_EQ(st.Reason(), "loading the model (2 of 4 ranks loaded)");
}

TEST(LoadingStateTest, ConcurrentRanksAreAllCountedAndNeverPastTheTotal) {
  LoadingState state(8);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 8; ++r) ranks.emplace_back([&state] { state.RankLoaded(10); });
  for (auto& t : ranks) t.join();
  EXPECT_EQ(state.Get().ranks_loaded, 8);
  EXPECT_EQ(state.Get().bytes_loaded, 80);
  state.RankLoaded(0);  // a stray report cannot read "9 of 8"
  EXPECT_EQ(state.Get().ranks_loaded, 8);
}

}  // namespace
}  // namespace tandem::coordinator
