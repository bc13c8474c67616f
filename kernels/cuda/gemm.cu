// GEMM through cuBLASLt: y[M, N] = x[M, K] W[N, K]^T, row-major, as the column-major product
// y^T[N, M] = op_T(W as col-major [K, N]) * (x as col-major [K, M]). fp32 accumulation and
// scale; bf16 in/out (or fp32 throughout, no TF32). The algorithm comes from cuBLASLt's heuristic
// for each call's shape within the handle's workspace.
#include <cublasLt.h>

#include <map>
#include <tuple>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"

namespace tandem::kernels::cuda {

namespace {

using namespace internal;

absl::Status LtError(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLASLt status ", static_cast<int>(st)));
}

template <typename T>
constexpr cudaDataType_t DataType() {
  return sizeof(T) == 2 ? CUDA_R_16BF : CUDA_R_32F;
}

}  // namespace

// Owns the cuBLASLt descriptors and chosen algorithm of one shape.
struct GemmHandle::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

struct GemmHandle::Cache {
  std::map<std::tuple<uint64_t, uint64_t, uint64_t, int>, std::unique_ptr<Plan>> plans;
};

GemmHandle::GemmHandle() : cache_(std::make_unique<Cache>()) {}

absl::StatusOr<std::unique_ptr<GemmHandle>> GemmHandle::Create(size_t workspace_bytes) {
  std::unique_ptr<GemmHandle> h(new GemmHandle());
  cublasLtHandle_t lt = nullptr;
  RETURN_IF_ERROR(LtError(cublasLtCreate(&lt), "cublasLtCreate"));
  h->lt_ = lt;
  if (workspace_bytes > 0) {
    RETURN_IF_ERROR(CudaError(cudaMalloc(&h->workspace_, workspace_bytes), "GEMM workspace"));
  }
  h->workspace_bytes_ = workspace_bytes;
  return h;
}

GemmHandle::~GemmHandle() {
  if (workspace_) cudaFree(workspace_);
  if (lt_) cublasLtDestroy(static_cast<cublasLtHandle_t>(lt_));
}

template <typename T>
absl::Status GemmHandle::Linear(const LinearParams<T>& p, void* stream) {
  if (p.num_tokens < 0 || p.in_features <= 0 || p.out_features <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("Linear: num_tokens=", p.num_tokens,
                                                   " in_features=", p.in_features,
                                                   " out_features=", p.out_features));
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  const uint64_t M = p.num_tokens, N = p.out_features, K = p.in_features;
  constexpr cudaDataType_t dt = DataType<T>();
  auto lt = static_cast<cublasLtHandle_t>(lt_);
  const size_t ws = workspace_bytes_;
  std::unique_ptr<Plan>& slot = cache_->plans[{M, N, K, static_cast<int>(dt)}];
  if (!slot) {
    auto d = std::make_unique<Plan>();
    RETURN_IF_ERROR(LtError(cublasLtMatmulDescCreate(&d->op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                            "cublasLtMatmulDescCreate"));
    const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
    RETURN_IF_ERROR(LtError(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSA,
                                                           &trans_a, sizeof trans_a),
                            "TRANSA"));
    RETURN_IF_ERROR(LtError(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSB,
                                                           &trans_b, sizeof trans_b),
                            "TRANSB"));
    RETURN_IF_ERROR(LtError(cublasLtMatrixLayoutCreate(&d->a, dt, K, N, K), "layout W"));
    RETURN_IF_ERROR(LtError(cublasLtMatrixLayoutCreate(&d->b, dt, K, M, K), "layout x"));
    RETURN_IF_ERROR(LtError(cublasLtMatrixLayoutCreate(&d->c, dt, N, M, N), "layout y"));
    RETURN_IF_ERROR(LtError(cublasLtMatmulPreferenceCreate(&d->pref), "preference"));
    RETURN_IF_ERROR(LtError(cublasLtMatmulPreferenceSetAttribute(
                                d->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
                            "workspace preference"));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    RETURN_IF_ERROR(LtError(cublasLtMatmulAlgoGetHeuristic(lt, d->op, d->a, d->b, d->c, d->c,
                                                           d->pref, 1, &result, &found),
                            "cublasLtMatmulAlgoGetHeuristic"));
    if (found == 0) {
      cache_->plans.erase({M, N, K, static_cast<int>(dt)});
      return absl::UnimplementedError(
          absl::StrCat("Linear: cuBLASLt has no algorithm for M=", M, " N=", N, " K=", K));
    }
    d->algo = result.algo;
    slot = std::move(d);
  }
  const Plan& d = *slot;
  const float alpha = 1.0f, beta = 0.0f;
  return LtError(cublasLtMatmul(lt, d.op, &alpha, p.w, d.a, p.x, d.b, &beta, p.y, d.c, p.y, d.c,
                                &d.algo, workspace_, ws, AsStream(stream)),
                 "cublasLtMatmul");
}
template absl::Status GemmHandle::Linear<float>(const LinearParams<float>&, void*);
template absl::Status GemmHandle::Linear<Bf16>(const LinearParams<Bf16>&, void*);

}  // namespace tandem::kernels::cuda
