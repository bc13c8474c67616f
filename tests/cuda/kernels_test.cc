// Each CUDA op against the CPU reference (kernels/cpu) on fresh random inputs, typed over the
// element types (f32, bf16), outputs poisoned first, with odd shapes (tails, one token, many
// sequences of different lengths, empty sequences, slot ids out of order). Labelled gpu; every
// test skips, saying why, where no CUDA device can be used.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/conv1d.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/selective_state_update.h"
#include "kernels/cpu/ssd_scan.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/ops.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/kernels/test_util.h"

namespace tandem::kernels::cuda {
namespace {

using cpu::testing::AllClose;
using testing::DeviceArray;
using testing::DeviceTensor;
using testing::Random;
using testing::Rounded;
using testing::ToDevice;
using testing::Tolerance;

template <typename T>
class CudaOpTest : public ::testing::Test {
 protected:
  void SetUp() override { TANDEM_SKIP_WITHOUT_GPU(); }
  std::mt19937 rng_{std::random_device{}()};
  static constexpr float kAtol = Tolerance<T>::kAtol;
  static constexpr float kRtol = Tolerance<T>::kRtol;
};

struct TypeNames {
  template <typename T>
  static std::string GetName(int) {
    return Tolerance<T>::kName;
  }
};
using ElementTypes = ::testing::Types<float, Bf16>;
TYPED_TEST_SUITE(CudaOpTest, ElementTypes, TypeNames);

// Lengths of a varlen batch with a one-token sequence, an empty one, tails past chunk sizes.
std::vector<int32_t> CuSeqlens(const std::vector<int32_t>& lens) {
  std::vector<int32_t> cu(lens.size() + 1, 0);
  for (size_t i = 0; i < lens.size(); ++i) cu[i + 1] = cu[i] + lens[i];
  return cu;
}
// Distinct slots in shuffled order out of num_slots.
std::vector<int32_t> ShuffledSlots(std::mt19937& rng, int64_t n, int64_t num_slots) {
  std::vector<int32_t> all(num_slots);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(n);
  return all;
}

TYPED_TEST(CudaOpTest, ReluSquaredAndConversions) {
  using T = TypeParam;
  const int64_t n = 100003;  // not a multiple of any block size
  std::vector<float> x = Random<T>(this->rng_, n, -3.0f, 3.0f);
  DeviceTensor<T> dx(x);
  ASSERT_TRUE(ReluSquared<T>(dx.get(), n, nullptr).ok());
  std::vector<float> ref = x;
  cpu::ReluSquaredInPlace(ref.data(), n);
  EXPECT_TRUE(AllClose(dx.Download(), Rounded<T>(ref), 0.0f, 1e-6f));

  // f32 -> bf16 rounds to nearest even exactly like core::FloatToBf16; bf16 -> f32 is exact.
  std::vector<float> f = cpu::testing::RandomVector(this->rng_, n, -1e3f, 1e3f);
  DeviceTensor<float> df(f);
  DeviceTensor<Bf16> db(n);
  db.Poison();
  ASSERT_TRUE(ConvertF32ToBf16(df.get(), db.get(), n, nullptr).ok());
  std::vector<Bf16> bits = db.DownloadRaw();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits[i].bits, core::FloatToBf16(f[i])) << i;
  DeviceTensor<float> back(n);
  back.Poison();
  ASSERT_TRUE(ConvertBf16ToF32(db.get(), back.get(), n, nullptr).ok());
  EXPECT_TRUE(AllClose(back.Download(), Rounded<Bf16>(f), 0.0f, 0.0f));
}

TYPED_TEST(CudaOpTest, EmbeddingVocabParallel) {
  using T = TypeParam;
  const int64_t hidden = 257, vocab_begin = 100, vocab_local = 50, tokens = 37;
  std::vector<float> table = Random<T>(this->rng_, vocab_local * hidden);
  std::uniform_int_distribution<int32_t> id(0, 300);
  std::vector<int32_t> ids(tokens);
  for (int32_t& v : ids) v = id(this->rng_);
  ids[0] = static_cast<int32_t>(vocab_begin);                    // first local row
  ids[1] = static_cast<int32_t>(vocab_begin + vocab_local - 1);  // last local row
  ids[2] = static_cast<int32_t>(vocab_begin + vocab_local);      // just outside
  auto dids = ToDevice(ids);
  DeviceTensor<T> dtable(table), dout(tokens * hidden);
  dout.Poison();
  EmbeddingParams<T> p{dids->get(), dtable.get(), dout.get(), tokens,
                       hidden,      vocab_begin,  vocab_local};
  ASSERT_TRUE(Embedding(p, nullptr).ok());
  std::vector<float> ref(tokens * hidden);
  cpu::Embedding({ids.data(), table.data(), ref.data(), tokens, hidden, vocab_begin, vocab_local});
  EXPECT_TRUE(AllClose(dout.Download(), ref, 0.0f, 0.0f));
}

TYPED_TEST(CudaOpTest, RmsNormFusedWithResidual) {
  using T = TypeParam;
  for (const int64_t hidden : {1, 31, 4096, 4099}) {
    const int64_t tokens = hidden > 1000 ? 9 : 17;
    std::vector<float> x = Random<T>(this->rng_, tokens * hidden, -2.0f, 2.0f);
    std::vector<float> res = Random<T>(this->rng_, tokens * hidden, -2.0f, 2.0f);
    std::vector<float> w = Random<T>(this->rng_, hidden, 0.5f, 1.5f);
    for (const bool with_residual : {false, true}) {
      DeviceTensor<T> dx(x), dres(res), dw(w), dout(tokens * hidden);
      dout.Poison();
      RmsNormParams<T> p{
          dx.get(), with_residual ? dres.get() : nullptr, dw.get(), dout.get(), tokens, hidden,
          1e-5f};
      ASSERT_TRUE(RmsNorm(p, nullptr).ok());
      std::vector<float> sum = x;
      if (with_residual) {
        sum = res;
        cpu::AddInPlace(sum.data(), x.data(), tokens * hidden);
        sum = Rounded<T>(sum);
        EXPECT_TRUE(AllClose(dres.Download(), sum, 0.0f, 0.0f)) << "residual, hidden " << hidden;
      }
      std::vector<float> ref(tokens * hidden);
      cpu::RmsNorm({sum.data(), w.data(), ref.data(), tokens, hidden, 1e-5f});
      EXPECT_TRUE(AllClose(dout.Download(), ref, this->kAtol, this->kRtol))
          << "hidden " << hidden << " residual " << with_residual;
    }
  }
}

TYPED_TEST(CudaOpTest, GatedRmsNormStridedGroups) {
  using T = TypeParam;
  const int64_t tokens = 13, dim = 96, group = 24, y_stride = 100, z_stride = 250;
  std::vector<float> y = Random<T>(this->rng_, tokens * y_stride, -2.0f, 2.0f);
  std::vector<float> z = Random<T>(this->rng_, tokens * z_stride, -3.0f, 3.0f);
  std::vector<float> w = Random<T>(this->rng_, dim, 0.5f, 1.5f);
  DeviceTensor<T> dy(y), dz(z), dw(w), dout(tokens * dim);
  dout.Poison();
  GatedRmsNormParams<T> p{dy.get(), dz.get(), dw.get(), dout.get(), tokens,
                          dim,      group,    y_stride, z_stride,   1e-5f};
  ASSERT_TRUE(GatedRmsNorm(p, nullptr).ok());
  std::vector<float> ref(tokens * dim);
  cpu::GatedRmsNorm(
      {y.data(), z.data(), w.data(), ref.data(), tokens, dim, group, y_stride, z_stride, 1e-5f});
  EXPECT_TRUE(AllClose(dout.Download(), ref, this->kAtol, this->kRtol));
  p.group_size = 25;  // does not divide dim
  EXPECT_EQ(GatedRmsNorm(p, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TYPED_TEST(CudaOpTest, LinearThroughCublasLt) {
  using T = TypeParam;
  absl::StatusOr<std::unique_ptr<GemmHandle>> gemm = GemmHandle::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  struct Shape {
    int64_t m, k, n;
  };
  // Twice over the shapes: the second round hits the handle's per-shape plan cache.
  for (int round = 0; round < 2; ++round) {
    for (const Shape s : {Shape{1, 64, 48}, Shape{7, 333, 129}, Shape{256, 1024, 512}}) {
      std::vector<float> x = Random<T>(this->rng_, s.m * s.k), w = Random<T>(this->rng_, s.n * s.k);
      DeviceTensor<T> dx(x), dw(w), dy(s.m * s.n);
      dy.Poison();
      ASSERT_TRUE(
          (*gemm)
              ->Linear(LinearParams<T>{dx.get(), dw.get(), dy.get(), s.m, s.k, s.n}, nullptr)
              .ok());
      std::vector<float> ref(s.m * s.n);
      cpu::Linear({x.data(), w.data(), ref.data(), s.m, s.k, s.n});
      // Sums of k products of O(1): absolute error grows like sqrt(k) * eps.
      const float atol = this->kAtol * std::sqrt(static_cast<float>(s.k));
      EXPECT_TRUE(AllClose(dy.Download(), ref, atol, this->kRtol))
          << s.m << "x" << s.k << "x" << s.n;
    }
  }
}

TYPED_TEST(CudaOpTest, CausalConv1dVarlenAndUpdate) {
  using T = TypeParam;
  const int64_t channels = 131, kernel = 4, x_stride = 140, num_slots = 9;
  const int64_t slot_stride = channels * (kernel - 1) + 5;
  const std::vector<int32_t> lens = {5, 1, 0, 2, 40, 3};
  const int64_t seqs = static_cast<int64_t>(lens.size());
  const std::vector<int32_t> cu = CuSeqlens(lens);
  const int64_t tokens = cu.back();
  std::vector<int32_t> slots = ShuffledSlots(this->rng_, seqs, num_slots);
  std::vector<uint8_t> init = {1, 1, 0, 1, 0, 1};
  std::vector<float> x = Random<T>(this->rng_, tokens * x_stride);
  std::vector<float> w = Random<T>(this->rng_, channels * kernel);
  std::vector<float> bias = Random<T>(this->rng_, channels);
  std::vector<float> state = Random<T>(this->rng_, num_slots * slot_stride);
  auto dcu = ToDevice(cu);
  auto dslots = ToDevice(slots);
  auto dinit = ToDevice(init);
  DeviceTensor<T> dx(x), dw(w), db(bias), dstate(state), dout(tokens * channels);
  dout.Poison();
  CausalConv1dParams<T> p{dx.get(),     dw.get(),     db.get(),   dcu->get(),  dslots->get(),
                          dinit->get(), dstate.get(), dout.get(), seqs,        channels,
                          kernel,       num_slots,    x_stride,   slot_stride, tokens};
  ASSERT_TRUE(CausalConv1d(p, nullptr).ok());
  std::vector<float> ref_out(tokens * channels), ref_state = state;
  cpu::CausalConv1d({x.data(), w.data(), bias.data(), cu.data(), slots.data(), init.data(),
                     ref_state.data(), ref_out.data(), seqs, channels, kernel, num_slots, x_stride,
                     slot_stride});
  EXPECT_TRUE(AllClose(dout.Download(), ref_out, this->kAtol, this->kRtol));
  EXPECT_TRUE(AllClose(dstate.Download(), Rounded<T>(ref_state), 0.0f, 0.0f));

  // Decode: one token per sequence, continuing from the states just written.
  const int64_t batch = 5;
  std::vector<int32_t> uslots = ShuffledSlots(this->rng_, batch, num_slots);
  std::vector<float> ux = Random<T>(this->rng_, batch * x_stride);
  std::vector<float> cur_state = dstate.Download();
  auto duslots = ToDevice(uslots);
  DeviceTensor<T> dux(ux), duout(batch * channels);
  duout.Poison();
  CausalConv1dUpdateParams<T> u{dux.get(),    dw.get(),    db.get(), duslots->get(),
                                dstate.get(), duout.get(), batch,    channels,
                                kernel,       num_slots,   x_stride, slot_stride};
  ASSERT_TRUE(CausalConv1dUpdate(u, nullptr).ok());
  std::vector<float> uref(batch * channels);
  cpu::CausalConv1dUpdate({ux.data(), w.data(), bias.data(), uslots.data(), cur_state.data(),
                           uref.data(), batch, channels, kernel, num_slots, x_stride, slot_stride});
  EXPECT_TRUE(AllClose(duout.Download(), uref, this->kAtol, this->kRtol));
  EXPECT_TRUE(AllClose(dstate.Download(), Rounded<T>(cur_state), 0.0f, 0.0f));
}

struct SsmShape {
  int64_t heads, head_dim, groups, state;
};

TYPED_TEST(CudaOpTest, SsdChunkScanMatchesSequentialScan) {
  using T = TypeParam;
  for (const SsmShape s : {SsmShape{4, 64, 2, 128}, SsmShape{3, 20, 1, 17}}) {
    const std::vector<int32_t> lens = {70, 1, 0, 32, 33, 5};
    const int64_t seqs = static_cast<int64_t>(lens.size()), num_slots = 8;
    const std::vector<int32_t> cu = CuSeqlens(lens);
    const int64_t tokens = cu.back();
    const int64_t inner = s.heads * s.head_dim, bc = s.groups * s.state;
    const int64_t x_stride = inner + 3, dt_stride = s.heads + 1, b_stride = bc + 2;
    std::vector<float> x = Random<T>(this->rng_, tokens * x_stride);
    std::vector<float> dt = Random<T>(this->rng_, tokens * dt_stride, -3.0f, 1.0f);
    std::vector<float> B = Random<T>(this->rng_, tokens * b_stride);
    std::vector<float> C = Random<T>(this->rng_, tokens * b_stride);
    std::vector<float> A_log = cpu::testing::RandomVector(this->rng_, s.heads, -1.0f, 1.0f);
    std::vector<float> D = cpu::testing::RandomVector(this->rng_, s.heads);
    std::vector<float> dt_bias = cpu::testing::RandomVector(this->rng_, s.heads, -1.0f, 0.5f);
    std::vector<int32_t> slots = ShuffledSlots(this->rng_, seqs, num_slots);
    std::vector<uint8_t> init = {1, 0, 1, 1, 0, 1};
    const int64_t state_n = num_slots * inner * s.state;
    std::vector<float> state = cpu::testing::RandomVector(this->rng_, state_n);
    auto dcu = ToDevice(cu);
    auto dslots = ToDevice(slots);
    auto dinit = ToDevice(init);
    DeviceTensor<T> dx(x), ddt(dt), dB(B), dC(C), dy(tokens * inner);
    DeviceTensor<float> dA(A_log), dD(D), dbias(dt_bias), dstate(state);
    dy.Poison();
    SsmScanParams<T> p;
    p.x = dx.get();
    p.dt = ddt.get();
    p.A_log = dA.get();
    p.B = dB.get();
    p.C = dC.get();
    p.D = dD.get();
    p.dt_bias = dbias.get();
    p.cu_seqlens = dcu->get();
    p.slots = dslots->get();
    p.has_initial_state = dinit->get();
    p.ssm_state = dstate.get();
    p.y = dy.get();
    p.num_seqs = seqs;
    p.num_heads = s.heads;
    p.head_dim = s.head_dim;
    p.n_groups = s.groups;
    p.state_size = s.state;
    p.num_slots = num_slots;
    p.x_stride = x_stride;
    p.dt_stride = dt_stride;
    p.b_stride = b_stride;
    p.c_stride = b_stride;
    ASSERT_TRUE(SsdChunkScan(p, nullptr).ok());
    std::vector<float> ref_y(tokens * inner), ref_state = state;
    cpu::SsmScanParams r;
    r.x = x.data();
    r.dt = dt.data();
    r.A_log = A_log.data();
    r.B = B.data();
    r.C = C.data();
    r.D = D.data();
    r.dt_bias = dt_bias.data();
    r.cu_seqlens = cu.data();
    r.slots = slots.data();
    r.has_initial_state = init.data();
    r.ssm_state = ref_state.data();
    r.y = ref_y.data();
    r.num_seqs = seqs;
    r.num_heads = s.heads;
    r.head_dim = s.head_dim;
    r.n_groups = s.groups;
    r.state_size = s.state;
    r.num_slots = num_slots;
    r.x_stride = x_stride;
    r.dt_stride = dt_stride;
    r.b_stride = b_stride;
    r.c_stride = b_stride;
    cpu::SsmScan(r);
    // State is fp32 either way; y of bf16 is rounded once. Sums of up to 70 decayed terms.
    EXPECT_TRUE(AllClose(dy.Download(), ref_y, 5 * this->kAtol, this->kRtol))
        << "heads " << s.heads << " head_dim " << s.head_dim << " state " << s.state;
    EXPECT_TRUE(AllClose(dstate.Download(), ref_state, 1e-3f, 1e-3f)) << "state";
  }
}

TYPED_TEST(CudaOpTest, SelectiveStateUpdateMatchesCpu) {
  using T = TypeParam;
  for (const SsmShape s : {SsmShape{8, 64, 2, 128}, SsmShape{3, 5, 3, 7}}) {
    const int64_t batch = 33, num_slots = 40;
    const int64_t inner = s.heads * s.head_dim, bc = s.groups * s.state;
    std::vector<float> x = Random<T>(this->rng_, batch * inner);
    std::vector<float> dt = Random<T>(this->rng_, batch * s.heads, -3.0f, 1.0f);
    std::vector<float> B = Random<T>(this->rng_, batch * bc), C = Random<T>(this->rng_, batch * bc);
    std::vector<float> A_log = cpu::testing::RandomVector(this->rng_, s.heads, -1.0f, 1.0f);
    std::vector<float> D = cpu::testing::RandomVector(this->rng_, s.heads);
    std::vector<float> dt_bias = cpu::testing::RandomVector(this->rng_, s.heads, -1.0f, 0.5f);
    std::vector<int32_t> slots = ShuffledSlots(this->rng_, batch, num_slots);
    std::vector<float> state = cpu::testing::RandomVector(this->rng_, num_slots * inner * s.state);
    auto dslots = ToDevice(slots);
    DeviceTensor<T> dx(x), ddt(dt), dB(B), dC(C), dy(batch * inner);
    DeviceTensor<float> dA(A_log), dD(D), dbias(dt_bias), dstate(state);
    dy.Poison();
    SelectiveStateUpdateParams<T> p;
    p.x = dx.get();
    p.dt = ddt.get();
    p.A_log = dA.get();
    p.B = dB.get();
    p.C = dC.get();
    p.D = dD.get();
    p.dt_bias = dbias.get();
    p.slots = dslots->get();
    p.ssm_state = dstate.get();
    p.y = dy.get();
    p.batch = batch;
    p.num_heads = s.heads;
    p.head_dim = s.head_dim;
    p.n_groups = s.groups;
    p.state_size = s.state;
    p.num_slots = num_slots;
    ASSERT_TRUE(SelectiveStateUpdate(p, nullptr).ok());
    std::vector<float> ref_y(batch * inner), ref_state = state;
    cpu::SelectiveStateUpdateParams r;
    r.x = x.data();
    r.dt = dt.data();
    r.A_log = A_log.data();
    r.B = B.data();
    r.C = C.data();
    r.D = D.data();
    r.dt_bias = dt_bias.data();
    r.slots = slots.data();
    r.ssm_state = ref_state.data();
    r.y = ref_y.data();
    r.batch = batch;
    r.num_heads = s.heads;
    r.head_dim = s.head_dim;
    r.n_groups = s.groups;
    r.state_size = s.state;
    r.num_slots = num_slots;
    cpu::SelectiveStateUpdate(r);
    EXPECT_TRUE(AllClose(dy.Download(), ref_y, this->kAtol, this->kRtol)) << s.state;
    EXPECT_TRUE(AllClose(dstate.Download(), ref_state, 1e-5f, 1e-5f)) << s.state;
  }
}

}  // namespace
}  // namespace tandem::kernels::cuda
