// CUDA ops with the contracts of kernels/cpu/*.h (see docs/kernels.md), on device pointers.
//
// Each Params struct mirrors its CPU counterpart field for field, with the element type T (float
// or Bf16) for activations and weights, fp32 for SSM parameters (A_log, D, dt_bias) and SSM state,
// and int32/uint8 metadata on the device. Math is fp32 inside every kernel; bf16 outputs are
// rounded once, at the store. Extra host-side fields (marked "host hint") carry sizes the CPU
// derives from cu_seqlens, so that no op reads device memory from the host (no synchronisation).
//
// Every op validates its scalar parameters (InvalidArgument naming the field and value), enqueues
// its kernels on `stream` (a cudaStream_t; nullptr = default stream) and returns the launch error,
// if any. Ops never allocate and never synchronise. Device pointers are not dereferenced on the
// host. Data errors on the device (an id out of range, a slot >= num_slots) are not detected.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/types.h"

namespace tandem::kernels::cuda {

// ---- Elementwise -------------------------------------------------------------------------------

// x[i] = relu(x[i])^2 in place.
template <typename T>
absl::Status ReluSquared(T* x, int64_t n, void* stream);

// dst[i] = convert(src[i]) (round to nearest even for f32 -> bf16; NaN stays NaN).
absl::Status ConvertF32ToBf16(const float* src, Bf16* dst, int64_t n, void* stream);
absl::Status ConvertBf16ToF32(const Bf16* src, float* dst, int64_t n, void* stream);

// ---- Embedding (kernels/cpu/embedding.h) -------------------------------------------------------

template <typename T>
struct EmbeddingParams {
  const int32_t* ids = nullptr;  // [num_tokens] global token ids (>= 0)
  const T* table = nullptr;      // [vocab_local, hidden]
  T* out = nullptr;              // [num_tokens, hidden]; ids outside the local range give zeros
  int64_t num_tokens = 0;
  int64_t hidden = 0;
  int64_t vocab_begin = 0;
  int64_t vocab_local = 0;
};
template <typename T>
absl::Status Embedding(const EmbeddingParams<T>& p, void* stream);

// ---- RMSNorm (kernels/cpu/rms_norm.h) ----------------------------------------------------------

// Fused residual add + RMSNorm:
//   if residual: residual[t, :] += x[t, :] (rounded to T), then out = RmsNorm(residual)
//   else:        out = RmsNorm(x)
// `out` may alias x (not residual). CPU equivalent: AddInPlace(residual, x); RmsNorm(residual).
template <typename T>
struct RmsNormParams {
  const T* x = nullptr;       // [num_tokens, hidden]
  T* residual = nullptr;      // [num_tokens, hidden] in/out, or nullptr
  const T* weight = nullptr;  // [hidden]
  T* out = nullptr;           // [num_tokens, hidden]
  int64_t num_tokens = 0;
  int64_t hidden = 0;
  float eps = 1e-5f;
};
template <typename T>
absl::Status RmsNorm(const RmsNormParams<T>& p, void* stream);

template <typename T>
struct GatedRmsNormParams {
  const T* y = nullptr;
  const T* z = nullptr;
  const T* weight = nullptr;
  T* out = nullptr;  // [num_tokens, dim] dense, may alias y when y_stride == dim
  int64_t num_tokens = 0;
  int64_t dim = 0;
  int64_t group_size = 0;
  int64_t y_stride = 0;  // 0 means dim
  int64_t z_stride = 0;  // 0 means dim
  float eps = 1e-5f;
};
template <typename T>
absl::Status GatedRmsNorm(const GatedRmsNormParams<T>& p, void* stream);

// ---- Causal conv1d (kernels/cpu/conv1d.h); conv state has the element type T -------------------

template <typename T>
struct CausalConv1dParams {
  const T* x = nullptr;
  const T* weight = nullptr;  // [channels, kernel]
  const T* bias = nullptr;    // [channels] or nullptr
  const int32_t* cu_seqlens = nullptr;
  const int32_t* slots = nullptr;
  const uint8_t* has_initial_state = nullptr;
  T* conv_state = nullptr;  // pool [num_slots, slot_stride], slot = [channels, kernel - 1]
  T* out = nullptr;         // [num_tokens, channels]
  int64_t num_seqs = 0;
  int64_t channels = 0;
  int64_t kernel = 4;
  int64_t num_slots = 0;
  int64_t x_stride = 0;
  int64_t slot_stride = 0;
  int64_t num_tokens = 0;  // host hint: cu_seqlens[num_seqs]
};
template <typename T>
absl::Status CausalConv1d(const CausalConv1dParams<T>& p, void* stream);

template <typename T>
struct CausalConv1dUpdateParams {
  const T* x = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  const int32_t* slots = nullptr;
  T* conv_state = nullptr;
  T* out = nullptr;
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t kernel = 4;
  int64_t num_slots = 0;
  int64_t x_stride = 0;
  int64_t slot_stride = 0;
};
template <typename T>
absl::Status CausalConv1dUpdate(const CausalConv1dUpdateParams<T>& p, void* stream);

// ---- Mamba-2 scan (kernels/cpu/ssd_scan.h, selective_state_update.h); fp32 state
// -----------------

template <typename T>
struct SsmScanParams {
  const T* x = nullptr;
  const T* dt = nullptr;
  const float* A_log = nullptr;
  const T* B = nullptr;
  const T* C = nullptr;
  const float* D = nullptr;
  const float* dt_bias = nullptr;
  const int32_t* cu_seqlens = nullptr;
  const int32_t* slots = nullptr;
  const uint8_t* has_initial_state = nullptr;
  float* ssm_state = nullptr;  // pool [num_slots, num_heads, head_dim, state_size]
  T* y = nullptr;              // [num_tokens, num_heads, head_dim]
  int64_t num_seqs = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t n_groups = 0;
  int64_t state_size = 0;
  int64_t num_slots = 0;
  int64_t x_stride = 0;
  int64_t dt_stride = 0;
  int64_t b_stride = 0;
  int64_t c_stride = 0;
};
// Chunked SSD (chunks of SsdChunkSize() tokens): intra-chunk quadratic form with segment-sum
// decays, then the inter-chunk state recurrence; one block per (sequence, head, head_dim tile).
template <typename T>
absl::Status SsdChunkScan(const SsmScanParams<T>& p, void* stream);

template <typename T>
struct SelectiveStateUpdateParams {
  const T* x = nullptr;
  const T* dt = nullptr;
  const float* A_log = nullptr;
  const T* B = nullptr;
  const T* C = nullptr;
  const float* D = nullptr;
  const float* dt_bias = nullptr;
  const int32_t* slots = nullptr;
  float* ssm_state = nullptr;
  T* y = nullptr;
  int64_t batch = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t n_groups = 0;
  int64_t state_size = 0;
  int64_t num_slots = 0;
  int64_t x_stride = 0;
  int64_t dt_stride = 0;
  int64_t b_stride = 0;
  int64_t c_stride = 0;
};
template <typename T>
absl::Status SelectiveStateUpdate(const SelectiveStateUpdateParams<T>& p, void* stream);

// ---- Paged attention (kernels/cpu/paged_attention.h); KV cache has the element type T -----------

template <typename T>
struct PagedAttentionParams {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const int32_t* cu_seqlens = nullptr;
  const int32_t* start_pos = nullptr;
  const int32_t* block_tables = nullptr;
  T* k_cache = nullptr;
  T* v_cache = nullptr;
  T* out = nullptr;
  int64_t num_seqs = 0;
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_size = 16;
  int64_t num_blocks = 0;
  int64_t max_blocks_per_seq = 0;
  float scale = 0.0f;
  bool bf16_probs = false;
  int64_t num_tokens = 0;     // host hint: cu_seqlens[num_seqs]
  int64_t max_query_len = 0;  // host hint: max new tokens of one sequence (1 = pure decode)
};
// Writes the new k/v into the cache, then runs the decode kernel (one query token per sequence,
// split over warps with online softmax) when max_query_len == 1, else the flash-style prefill
// kernel (query tiles x key tiles in shared memory, online softmax).
template <typename T>
absl::Status PagedAttention(const PagedAttentionParams<T>& p, void* stream);

}  // namespace tandem::kernels::cuda
