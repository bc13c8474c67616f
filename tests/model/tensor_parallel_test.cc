// Tensor-parallel shards of one model, run on threads of this process with an in-process
// all-reduce, give the single-shard logits: the per-segment slicing of in_proj / conv1d, the head
// slicing of attention and the vocab-parallel embedding and lm_head are right. (Real processes
// over Gloo/UCX are the worker tests' business.) Each rank holds ~1/tp of the weights.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "model/local_runner.h"
#include "model/nemotron_h_model.h"
#include "tests/model/model_test_util.h"

namespace tandem::model {
namespace {

// Sums each rank's buffer in rank order and writes the sum back to all of them.
struct ReduceGroup {
  std::mutex mu;
  std::condition_variable cv;
  int size = 1;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<float*> buffers;
};

class ThreadReducer : public AllReducer {
 public:
  ThreadReducer(ReduceGroup* group, int rank) : group_(group), rank_(rank) {}
  absl::Status AllReduceSum(float* data, size_t n) override {
    std::unique_lock<std::mutex> lock(group_->mu);
    group_->buffers[rank_] = data;
    const uint64_t generation = group_->generation;
    if (++group_->arrived == group_->size) {
      for (size_t i = 0; i < n; ++i) {
        float sum = 0;
        for (float* b : group_->buffers) sum += b[i];
        for (float* b : group_->buffers) b[i] = sum;
      }
      group_->arrived = 0;
      ++group_->generation;
      group_->cv.notify_all();
    } else {
      group_->cv.wait(lock, [&] { return group_->generation != generation; });
    }
    return absl::OkStatus();
  }

 private:
  ReduceGroup* group_;
  int rank_;
};

struct Case {
  std::string preset;
  int tp;
  core::DType dtype;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.preset << " tp=" << c.tp << " " << core::DTypeName(c.dtype);
}

class TensorParallelTest : public ::testing::TestWithParam<Case> {};

TEST_P(TensorParallelTest, ShardsReproduceTheSingleShardLogits) {
  const Case c = GetParam();
  testing::TempDir dir;
  const uint64_t seed = testing::FreshSeed();
  std::mt19937_64 rng(seed);
  const std::string model_dir = testing::WriteTiny(dir, c.preset, seed % 1000, c.dtype);
  auto whole = NemotronHModel::Load(model_dir, {});
  ASSERT_TRUE(whole.ok()) << whole.status();
  const auto tokens = testing::RandomTokens(rng, 27, (*whole)->config().vocab_size);
  auto want = PromptLogits(**whole, tokens);
  ASSERT_TRUE(want.ok());

  ReduceGroup group;
  group.size = c.tp;
  group.buffers.resize(c.tp);
  std::vector<std::unique_ptr<ThreadReducer>> reducers;
  std::vector<std::unique_ptr<NemotronHModel>> shards;
  for (int r = 0; r < c.tp; ++r) {
    reducers.push_back(std::make_unique<ThreadReducer>(&group, r));
    ModelOptions options;
    options.tp = {r, c.tp, reducers.back().get()};
    auto shard = NemotronHModel::Load(model_dir, options);
    ASSERT_TRUE(shard.ok()) << shard.status();
    shards.push_back(std::move(*shard));
  }
  std::vector<absl::StatusOr<core::Tensor>> parts(c.tp, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < c.tp; ++r) {
    threads.emplace_back([&, r] { parts[r] = PromptLogits(*shards[r], tokens); });
  }
  for (auto& t : threads) t.join();

  const int64_t vocab = (*whole)->config().vocab_size, local = vocab / c.tp;
  std::vector<float> got(tokens.size() * vocab);
  for (int r = 0; r < c.tp; ++r) {
    ASSERT_TRUE(parts[r].ok()) << parts[r].status();
    ASSERT_EQ(parts[r]->dim(1), local);
    for (size_t t = 0; t < tokens.size(); ++t) {
      std::copy(parts[r]->data<float>() + t * local, parts[r]->data<float>() + (t + 1) * local,
                got.begin() + t * vocab + r * local);
    }
  }
  // f32: summation order of the all-reduce only. bf16: the rounding points see partial sums in
  // another order, which can move a value across a bf16 rounding boundary (2^-8 relative).
  const double tol = c.dtype == core::DType::kF32 ? 1e-4 : 3e-2;
  EXPECT_LE(testing::RelMaxError(got.data(), want->data<float>(), want->numel()), tol);

  // Each rank holds and reads ~1/tp of the weights (norms are replicated: a few KiB).
  const double whole_bytes = static_cast<double>((*whole)->weight_bytes());
  const double whole_read = static_cast<double>((*whole)->checkpoint_bytes_read());
  for (const auto& shard : shards) {
    EXPECT_NEAR(shard->weight_bytes() / whole_bytes, 1.0 / c.tp, 0.02);
    EXPECT_NEAR(shard->checkpoint_bytes_read() / whole_read, 1.0 / c.tp, 0.02);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, TensorParallelTest,
                         ::testing::Values(Case{"tiny", 2, core::DType::kF32},
                                           Case{"tiny", 4, core::DType::kF32},
                                           Case{"tiny-7", 2, core::DType::kF32},
                                           Case{"tiny", 2, core::DType::kBF16}),
                         [](const auto& info) {
                           std::string name = info.param.preset + "_tp" +
                                              std::to_string(info.param.tp) + "_" +
                                              std::string(core::DTypeName(info.param.dtype));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace tandem::model
