// Host-side logic of the CUDA model backend (no GPU): plan validation agrees with the CPU model's,
// the packed step metadata, the workspace layout, and the --backend check.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "kernels/backend_registry.h"
#include "kernels/cuda/launch_plan.h"
#include "model/cuda/local_backend.h"
#include "model/cuda/step_metadata.h"
#include "model/cuda/synthetic_weights.h"
#include "model/nemotron_h_model.h"
#include "tests/model/model_test_util.h"

namespace tandem::model::cuda {
namespace {

using model::testing::TempDir;

SequenceStep Seq(int32_t slot, std::vector<int32_t> blocks, int64_t start, std::vector<int32_t> ids,
                 LogitsRequest logits = LogitsRequest::kLast) {
  SequenceStep s;
  s.slot = slot;
  s.block_table = std::move(blocks);
  s.start_pos = start;
  s.token_ids = std::move(ids);
  s.logits = logits;
  return s;
}

TEST(CudaModelHostTest, ValidationAgreesWithCpuModel) {
  TempDir dir;
  const std::string path = model::testing::WriteTiny(dir, "tiny", 1, core::DType::kF32);
  auto cpu = NemotronHModel::Load(path, {});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  StateCapacity cap{4, 8, 16};
  (*cpu)->AllocateState(cap);
  const core::ModelConfig& c = (*cpu)->config();
  std::vector<StepPlan> plans;
  plans.push_back({});                                                        // no sequences
  plans.push_back({{Seq(0, {0}, 0, {1, 2, 3})}});                             // fine
  plans.push_back({{Seq(0, {0}, 0, {})}});                                    // no tokens
  plans.push_back({{Seq(0, {0}, 0, {static_cast<int32_t>(c.vocab_size)})}});  // id too large
  plans.push_back({{Seq(0, {0}, 0, {-1})}});                                  // negative id
  plans.push_back({{Seq(4, {0}, 0, {1})}});                                   // slot out of range
  plans.push_back({{Seq(1, {0}, 0, {1}), Seq(1, {1}, 0, {2})}});              // slot twice
  plans.push_back({{Seq(0, {0}, 10, std::vector<int32_t>(7, 1))}});           // table too short
  plans.push_back({{Seq(0, {9}, 0, {1})}});                                   // block out of range
  plans.push_back({{Seq(0, {3}, 0, {1}), Seq(2, {3}, 0, {1})}});              // block written twice
  plans.push_back({{Seq(0, {3, 5}, 20, {1}), Seq(2, {3, 6}, 20, {1})}});      // shared prefix: fine
  plans.push_back({{Seq(0, {0}, c.max_position_embeddings, {1})}});           // past the maximum
  plans.push_back({{Seq(3, {0, 1}, 5, std::vector<int32_t>(20, 7)), Seq(1, {2}, 3, {4})}});
  int accepted = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    const absl::Status want = (*cpu)->ValidatePlan(plans[i]);
    const absl::Status got = ValidateStepPlan(c, cap, 0, c.num_hidden_layers, plans[i]);
    EXPECT_EQ(got, want) << "plan " << i;
    accepted += want.ok();
  }
  EXPECT_EQ(accepted, 3);
}

TEST(CudaModelHostTest, PackStepLayout) {
  std::mt19937_64 rng(model::testing::FreshSeed());
  for (int trial = 0; trial < 50; ++trial) {
    StepPlan plan;
    const int seqs = 1 + static_cast<int>(rng() % 9);
    std::vector<int32_t> slots(16);
    for (int i = 0; i < 16; ++i) slots[i] = i;
    std::shuffle(slots.begin(), slots.end(), rng);
    for (int s = 0; s < seqs; ++s) {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 5);
      const int64_t start = static_cast<int64_t>(rng() % 40);
      std::vector<int32_t> blocks(1 + rng() % 4);
      for (auto& b : blocks) b = static_cast<int32_t>(rng() % 100);
      const auto logits = static_cast<LogitsRequest>(rng() % 3);
      plan.sequences.push_back(
          Seq(slots[s], blocks, start, model::testing::RandomTokens(rng, n, 1000), logits));
    }
    const PackedStep p = PackStep(plan);
    ASSERT_EQ(p.num_seqs, seqs);
    ASSERT_EQ(p.num_tokens, plan.num_tokens());
    const int32_t* b = p.buffer.data();
    int64_t t = 0, rows = 0, max_len = 0, max_blocks = 0;
    bool decode = true;
    for (int s = 0; s < seqs; ++s) {
      const SequenceStep& q = plan.sequences[s];
      const int64_t n = static_cast<int64_t>(q.token_ids.size());
      max_len = std::max(max_len, n);
      max_blocks = std::max<int64_t>(max_blocks, q.block_table.size());
      decode = decode && n == 1 && q.start_pos > 0;
      EXPECT_EQ(b[p.cu_seqlens + s], t);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(b[p.token_ids + t + i], q.token_ids[i]);
      EXPECT_EQ(b[p.slots + s], q.slot);
      EXPECT_EQ(b[p.start_pos + s], q.start_pos);
      uint8_t init = 0;
      std::memcpy(&init, reinterpret_cast<const uint8_t*>(b + p.has_initial_state) + s, 1);
      EXPECT_EQ(init, q.start_pos > 0 ? 1 : 0);
      EXPECT_EQ(p.row_begin[s], rows);
      const int64_t want_rows =
          q.logits == LogitsRequest::kAll ? n : (q.logits == LogitsRequest::kLast ? 1 : 0);
      ASSERT_EQ(p.row_count[s], want_rows);
      for (int64_t r = 0; r < want_rows; ++r) {
        EXPECT_EQ(b[p.logits_rows + rows + r], t + n - want_rows + r);
      }
      rows += want_rows;
      t += n;
    }
    EXPECT_EQ(b[p.cu_seqlens + seqs], t);
    EXPECT_EQ(p.num_logits_rows, rows);
    EXPECT_EQ(p.max_query_len, max_len);
    EXPECT_EQ(p.max_blocks_per_seq, max_blocks);
    EXPECT_EQ(p.pure_decode, decode);
    for (int s = 0; s < seqs; ++s) {
      const auto& table = plan.sequences[s].block_table;
      for (int64_t j = 0; j < max_blocks; ++j) {
        const int32_t want = j < static_cast<int64_t>(table.size()) ? table[j] : 0;
        EXPECT_EQ(b[p.block_tables + s * max_blocks + j], want);
      }
    }
    EXPECT_GE(static_cast<int64_t>(p.buffer.size()) * 4, p.has_initial_state * 4 + seqs);
  }
}

TEST(CudaModelHostTest, PureDecodeNeedsOneContinuingTokenEverywhere) {
  EXPECT_TRUE(PackStep({{Seq(0, {0}, 3, {1}), Seq(1, {1}, 9, {2})}}).pure_decode);
  EXPECT_FALSE(PackStep({{Seq(0, {0}, 3, {1}), Seq(1, {1}, 0, {2})}}).pure_decode);
  EXPECT_FALSE(PackStep({{Seq(0, {0}, 3, {1, 2})}}).pure_decode);
}

TEST(CudaModelHostTest, WorkspaceLayoutIsAlignedDisjointAndLargeEnough) {
  auto tiny = core::TinyPreset("tiny");
  ASSERT_TRUE(tiny.ok());
  const core::ModelConfig& c = *tiny;
  for (size_t elem : {size_t{2}, size_t{4}}) {
    for (int64_t tokens : {1, 7, 300}) {
      const int64_t rows = tokens / 2 + 1;
      const WorkspaceLayout w = LayoutWorkspace(c, 0, c.num_hidden_layers, tokens, rows, elem);
      const size_t th = tokens * c.hidden_size * elem;
      std::vector<std::pair<size_t, size_t>> parts = {
          {w.hidden, th},
          {w.normed, th},
          {w.mixer_out, th},
          {w.scratch, ScratchBytes(c, 0, c.num_hidden_layers, tokens, elem)},
          {w.rows, rows * c.hidden_size * elem},
          {w.logits, rows * c.vocab_size * elem}};
      if (elem == 2) parts.push_back({w.logits_f32, rows * c.vocab_size * 4});
      EXPECT_EQ(w.logits_f32 == w.logits, elem == 4);
      std::sort(parts.begin(), parts.end());
      for (size_t i = 0; i < parts.size(); ++i) {
        EXPECT_EQ(parts[i].first % 256, 0u);
        const size_t end = parts[i].first + parts[i].second;
        EXPECT_LE(end, i + 1 < parts.size() ? parts[i + 1].first : w.total_bytes);
      }
      // The scratch holds the widest mixer: Mamba-2 zxbcdt + xBC + y, attention q, k, v, o, MLP.
      const size_t mamba = tokens * (c.in_proj_dim() + c.conv_dim() + c.d_inner()) * elem;
      const size_t attention = tokens * (2 * c.q_dim() + 2 * c.kv_dim()) * elem;
      const size_t mlp = tokens * c.intermediate_size * elem;
      const size_t scratch = ScratchBytes(c, 0, c.num_hidden_layers, tokens, elem);
      EXPECT_GE(scratch, std::max({mamba, attention, mlp}));
      EXPECT_LE(scratch, std::max({mamba, attention, mlp}) + 4 * 256);
    }
  }
  // Only the layers of the range count: MLP-only range of "tiny" (layer 1 is '-').
  ASSERT_EQ(c.layers[1], core::LayerKind::kMlp);
  EXPECT_EQ(ScratchBytes(c, 1, 2, 10, 4), AlignUp(10 * c.intermediate_size * 4));
}

// The kernels accept every shape the model launches them with (H100/H200 opt-in shared memory,
// 227 KiB): the 8B config and the tiny presets, decode batches up to 256, prefill up to 8192.
TEST(CudaModelHostTest, KernelLaunchPlansFitModelShapes) {
  std::vector<core::ModelConfig> configs;
  auto big = core::ModelConfig::FromFile(std::string(TANDEM_SOURCE_DIR) +
                                         "/configs/nemotron-h-8b/config.json");
  ASSERT_TRUE(big.ok()) << big.status();
  configs.push_back(*big);
  for (const std::string& name : core::TinyPresetNames()) {
    auto tiny = core::TinyPreset(name);
    ASSERT_TRUE(tiny.ok());
    configs.push_back(*tiny);
  }
  const int64_t shared = 227 << 10;
  for (const core::ModelConfig& c : configs) {
    SCOPED_TRACE(c.hybrid_override_pattern);
    EXPECT_LE(c.conv_kernel, 8);
    EXPECT_LE(c.head_dim, 256);
    for (int64_t seqs : {1, 16, 64, 256}) {
      auto ssd = kernels::cuda::PlanSsdScan(seqs, c.mamba_num_heads, c.mamba_head_dim, c.n_groups,
                                            c.ssm_state_size, shared);
      EXPECT_TRUE(ssd.ok()) << ssd.status();
      auto update = kernels::cuda::PlanStateUpdate(seqs, c.mamba_num_heads, c.mamba_head_dim,
                                                   c.n_groups, c.ssm_state_size);
      EXPECT_TRUE(update.ok()) << update.status();
      for (int64_t query : {int64_t{1}, int64_t{37}, int64_t{8192}}) {
        auto attention = kernels::cuda::PlanAttention(
            seqs, c.num_attention_heads, c.num_key_value_heads, c.head_dim, query, shared);
        EXPECT_TRUE(attention.ok()) << attention.status();
      }
    }
  }
}

TEST(CudaModelHostTest, SyntheticWeightsHaveTheInitialisationStatistics) {
  auto tiny = core::TinyPreset("tiny");
  ASSERT_TRUE(tiny.ok());
  const core::ModelConfig& c = *tiny;
  const uint64_t seed = model::testing::FreshSeed();
  for (const core::ExpectedTensor& e : core::ExpectedTensors(c)) {
    SCOPED_TRACE(e.name);
    auto t = SyntheticTensor(c, e.name, e.shape, seed, core::DType::kF32);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->shape(), e.shape);
    const float* v = t->data<float>();
    double sum = 0, sq = 0, lo = 1e30, hi = -1e30;
    for (int64_t i = 0; i < t->numel(); ++i) {
      ASSERT_TRUE(std::isfinite(v[i]));
      sum += v[i];
      sq += double(v[i]) * v[i];
      lo = std::min<double>(lo, v[i]);
      hi = std::max<double>(hi, v[i]);
    }
    const double n = static_cast<double>(t->numel());
    const double mean = sum / n, stddev = std::sqrt(std::max(0.0, sq / n - mean * mean));
    if (absl::EndsWith(e.name, ".A_log")) {
      EXPECT_GE(lo, 0.0);
      EXPECT_LE(hi, std::log(16.0) + 1e-6);
    } else if (absl::EndsWith(e.name, ".dt_bias")) {
      // softplus(dt_bias) = dt in [1e-3, 1e-1].
      EXPECT_GE(std::log1p(std::exp(lo)), 0.999e-3);
      EXPECT_LE(std::log1p(std::exp(hi)), 0.1001);
    } else if (e.name.find("proj.weight") != std::string::npos && n >= 4096) {
      const double want = 1.0 / std::sqrt(static_cast<double>(e.shape.back()));
      EXPECT_NEAR(mean, 0.0, 0.1 * want);
      EXPECT_NEAR(stddev, want, 0.05 * want);
    }
  }
  // Several chunks (all cores): deterministic in (seed, name), bf16 = rounded f32, name matters.
  const core::Shape big = {3, 1000, 1000};
  auto a =
      SyntheticTensor(c, "backbone.layers.0.mixer.in_proj.weight", big, seed, core::DType::kF32);
  auto b =
      SyntheticTensor(c, "backbone.layers.0.mixer.in_proj.weight", big, seed, core::DType::kBF16);
  auto other =
      SyntheticTensor(c, "backbone.layers.1.mixer.in_proj.weight", big, seed, core::DType::kF32);
  ASSERT_TRUE(a.ok() && b.ok() && other.ok());
  int64_t same_as_other = 0;
  const uint16_t* bb = static_cast<const uint16_t*>(b->raw());
  for (int64_t i = 0; i < a->numel(); ++i) {
    ASSERT_EQ(bb[i], core::FloatToBf16(a->data<float>()[i])) << i;
    same_as_other += a->data<float>()[i] == other->data<float>()[i];
  }
  EXPECT_LT(same_as_other, a->numel() / 1000);
  EXPECT_FALSE(SyntheticTensor(c, "x", {2}, seed, core::DType::kI32).ok());
}

TEST(CudaModelHostTest, BackendCheck) {
  EXPECT_TRUE(CheckBackend("cpu").ok());
  const absl::Status unknown = CheckBackend("tpu");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  const absl::Status cuda = CheckBackend("cuda");
  if (!kernels::CudaBackendCompiled()) {
    EXPECT_EQ(cuda.code(), absl::StatusCode::kNotFound);
    EXPECT_NE(std::string(cuda.message()).find("not compiled"), std::string::npos) << cuda;
  } else if (!cuda.ok()) {
    EXPECT_EQ(cuda.code(), absl::StatusCode::kFailedPrecondition) << cuda;
  }
  if (!cuda.ok()) {
    // The CUDA entry points fail with the same reason rather than crashing.
    const auto logits = CudaPromptLogits("/nonexistent", {}, {1, 2});
    EXPECT_EQ(logits.status().code(), cuda.code());
  }
}

}  // namespace
}  // namespace tandem::model::cuda
