// Argument validation of the CUDA ops: bad scalar parameters are rejected with InvalidArgument
// naming the field, and empty work returns OK, before any device work is enqueued. Needs no GPU
// (no label): runs in every CUDA-enabled build, with or without a device.
#include <string>

#include "gtest/gtest.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/sampling.h"

namespace tandem::kernels::cuda {
namespace {

void ExpectInvalid(const absl::Status& st, const std::string& mentions) {
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find(mentions), std::string::npos) << st;
}

TEST(CudaValidationTest, NormsAndEmbedding) {
  RmsNormParams<Bf16> n;
  n.num_tokens = 3;
  n.hidden = 0;
  ExpectInvalid(RmsNorm(n, nullptr), "hidden=0");
  n.hidden = 8;
  n.num_tokens = 0;
  EXPECT_TRUE(RmsNorm(n, nullptr).ok());  // nothing to do, nothing launched

  GatedRmsNormParams<float> g;
  g.num_tokens = 1;
  g.dim = 10;
  g.group_size = 4;
  ExpectInvalid(GatedRmsNorm(g, nullptr), "group_size=4");
  g.group_size = 5;
  g.y_stride = 9;
  ExpectInvalid(GatedRmsNorm(g, nullptr), "y_stride=9");

  EmbeddingParams<float> e;
  e.num_tokens = 2;
  e.hidden = 4;
  e.vocab_begin = -1;
  ExpectInvalid(Embedding(e, nullptr), "vocab_begin=-1");
  ExpectInvalid(ReluSquared<float>(nullptr, -1, nullptr), "n = -1");
  EXPECT_TRUE(ConvertF32ToBf16(nullptr, nullptr, 0, nullptr).ok());
}

TEST(CudaValidationTest, ConvAndScan) {
  CausalConv1dParams<Bf16> c;
  c.num_seqs = 1;
  c.channels = 16;
  c.kernel = 9;
  ExpectInvalid(CausalConv1d(c, nullptr), "kernel=9");
  c.kernel = 4;
  c.x_stride = 8;
  ExpectInvalid(CausalConv1d(c, nullptr), "x_stride=8");
  CausalConv1dUpdateParams<float> u;
  u.batch = 0;
  u.channels = 16;
  EXPECT_TRUE(CausalConv1dUpdate(u, nullptr).ok());

  SsmScanParams<Bf16> s;
  s.num_seqs = 1;
  s.num_heads = 6;
  s.head_dim = 64;
  s.n_groups = 4;
  s.state_size = 128;
  ExpectInvalid(SsdChunkScan(s, nullptr), "not divisible");
  s.n_groups = 2;
  s.dt_stride = 3;
  ExpectInvalid(SsdChunkScan(s, nullptr), "dt_stride=3");

  SelectiveStateUpdateParams<float> su;
  su.batch = 4;
  su.num_heads = 4;
  su.head_dim = 0;
  su.n_groups = 1;
  su.state_size = 16;
  ExpectInvalid(SelectiveStateUpdate(su, nullptr), "head_dim=0");
}

TEST(CudaValidationTest, AttentionAndSampling) {
  PagedAttentionParams<Bf16> a;
  a.num_seqs = 1;
  a.num_q_heads = 8;
  a.num_kv_heads = 3;
  a.head_dim = 64;
  a.max_query_len = 1;
  ExpectInvalid(PagedAttention(a, nullptr), "num_kv_heads=3");
  a.num_kv_heads = 2;
  a.scale = 0.0f;
  a.num_tokens = 1;
  ExpectInvalid(PagedAttention(a, nullptr), "scale=0");
  a.head_dim = 512;
  ExpectInvalid(PagedAttention(a, nullptr), "head_dim 512");

  SampleBatchParams p;
  p.batch = 2;
  p.vocab = 0;
  ExpectInvalid(SampleBatch(p, nullptr), "vocab=0");
  p.vocab = 10;
  p.any_penalties = true;
  ExpectInvalid(SampleBatch(p, nullptr), "workspace");
  EXPECT_EQ(SamplingWorkspaceBytes(3, 1000), size_t{12000});
}

}  // namespace
}  // namespace tandem::kernels::cuda
