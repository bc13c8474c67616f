// STATUS: compiled, never run on a GPU — needs device validation (docs/cuda.md).
#include "model/cuda/cuda_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/ops.h"
#include "model/cuda/step_metadata.h"
#include "model/cuda/synthetic_weights.h"
#include "model/weight_loader.h"

namespace tandem::model::cuda {

namespace kc = ::tandem::kernels::cuda;

namespace {

// Returns a checkpoint tensor by name (any floating dtype; converted at upload).
using WeightSource = std::function<absl::StatusOr<core::Tensor>(const std::string&)>;

struct Layer {
  core::LayerKind kind = core::LayerKind::kMamba;
  void* norm = nullptr;
  // Mamba-2
  void *in_proj = nullptr, *conv_w = nullptr, *conv_b = nullptr, *gated_norm = nullptr,
       *out_proj = nullptr;
  float *a_log = nullptr, *d = nullptr, *dt_bias = nullptr;
  void* conv_state = nullptr;
  float* ssm_state = nullptr;
  // attention
  void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  void *k_cache = nullptr, *v_cache = nullptr;
  // MLP
  void *up = nullptr, *down = nullptr;
};

// Prefix-cache snapshots (StepPlan restore_snapshot / save_snapshot) are CPU-model only for now.
absl::Status CheckNoSnapshots(const StepPlan& plan) {
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const SequenceStep& s = plan.sequences[i];
    if (s.restore_snapshot != -1 || s.save_snapshot != -1) {
      return absl::UnimplementedError(absl::StrCat(
          "sequence ", i, " (slot ", s.slot, "): the CUDA model does not implement prefix-cache ",
          "snapshots (restore_snapshot ", s.restore_snapshot, ", save_snapshot ", s.save_snapshot,
          ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

struct CudaNemotronHModel::Impl {
  core::ModelConfig config;
  int device = 0;
  bool bf16 = false;
  size_t elem = 4;
  void* stream = nullptr;
  std::unique_ptr<kc::GemmHandle> gemm;
  std::vector<void*> weight_allocs, state_allocs;
  void *embedding = nullptr, *norm_f = nullptr, *lm_head = nullptr;
  std::vector<Layer> layers;
  StateCapacity capacity;
  uint64_t weight_bytes = 0, state_bytes = 0;
  void* workspace = nullptr;
  WorkspaceLayout ws;
  void* meta_device = nullptr;
  void* meta_host = nullptr;  // pinned
  size_t meta_bytes = 0;
  // Pinned host buffer for the logits, handed out as the StepLogits tensor's storage and reused
  // by the next step unless the caller still holds it (then a new one is allocated).
  std::shared_ptr<void> logits_host;
  size_t logits_host_bytes = 0;

  ~Impl() {
    // Errors are ignored: nothing sensible is left to do with them in a destructor.
    if (stream != nullptr) (void)kc::Synchronize(stream);
    for (void* p : weight_allocs) (void)kc::Free(p);
    for (void* p : state_allocs) (void)kc::Free(p);
    if (workspace != nullptr) (void)kc::Free(workspace);
    if (meta_device != nullptr) (void)kc::Free(meta_device);
    if (meta_host != nullptr) (void)kc::FreeHost(meta_host);
    gemm.reset();
    if (stream != nullptr) (void)kc::DestroyStream(stream);
  }

  absl::StatusOr<void*> Alloc(std::vector<void*>& list, size_t bytes) {
    ASSIGN_OR_RETURN(void* p, kc::Malloc(bytes));
    list.push_back(p);
    return p;
  }

  // Uploads `t` in the model's element type, or in f32 when `as_f32`.
  absl::StatusOr<void*> Upload(const std::string& name, const core::Tensor& t, bool as_f32) {
    const size_t n = static_cast<size_t>(t.numel());
    const bool want_bf16 = bf16 && !as_f32;
    std::vector<uint16_t> b16;
    std::vector<float> f32;
    const void* src = nullptr;
    size_t bytes = 0;
    if (t.dtype() != core::DType::kF32 && t.dtype() != core::DType::kBF16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, " has dtype ", core::DTypeName(t.dtype()), "; want f32 or bf16"));
    }
    if (want_bf16) {
      bytes = n * 2;
      if (t.dtype() == core::DType::kBF16) {
        src = t.raw();
      } else {
        b16.resize(n);
        const float* f = t.data<float>();
        for (size_t i = 0; i < n; ++i) b16[i] = core::FloatToBf16(f[i]);
        src = b16.data();
      }
    } else {
      bytes = n * 4;
      if (t.dtype() == core::DType::kF32) {
        src = t.raw();
      } else {
        f32.resize(n);
        const uint16_t* b = static_cast<const uint16_t*>(t.raw());
        for (size_t i = 0; i < n; ++i) f32[i] = core::Bf16ToFloat(b[i]);
        src = f32.data();
      }
    }
    ASSIGN_OR_RETURN(void* d, Alloc(weight_allocs, bytes));
    RETURN_IF_ERROR(kc::CopyToDevice(d, src, bytes, stream));
    weight_bytes += bytes;
    return d;
  }

  absl::Status LoadWeights(const WeightSource& source, const std::string& embedding_name) {
    const auto get = [&](const std::string& name, bool as_f32) -> absl::StatusOr<void*> {
      ASSIGN_OR_RETURN(core::Tensor t, source(name));
      return Upload(name, t, as_f32);
    };
    ASSIGN_OR_RETURN(embedding, get(embedding_name, false));
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      const std::string prefix = absl::StrCat("backbone.layers.", i);
      const std::string m = prefix + ".mixer";
      Layer l;
      l.kind = config.layers[i];
      ASSIGN_OR_RETURN(l.norm, get(prefix + ".norm.weight", false));
      switch (l.kind) {
        case core::LayerKind::kMamba: {
          ASSIGN_OR_RETURN(l.in_proj, get(m + ".in_proj.weight", false));
          ASSIGN_OR_RETURN(l.conv_w, get(m + ".conv1d.weight", false));
          if (config.use_conv_bias) {
            ASSIGN_OR_RETURN(l.conv_b, get(m + ".conv1d.bias", false));
          }
          ASSIGN_OR_RETURN(void* a_log, get(m + ".A_log", true));
          ASSIGN_OR_RETURN(void* d, get(m + ".D", true));
          ASSIGN_OR_RETURN(void* dt_bias, get(m + ".dt_bias", true));
          l.a_log = static_cast<float*>(a_log);
          l.d = static_cast<float*>(d);
          l.dt_bias = static_cast<float*>(dt_bias);
          ASSIGN_OR_RETURN(l.gated_norm, get(m + ".norm.weight", false));
          ASSIGN_OR_RETURN(l.out_proj, get(m + ".out_proj.weight", false));
          break;
        }
        case core::LayerKind::kAttention: {
          ASSIGN_OR_RETURN(l.q, get(m + ".q_proj.weight", false));
          ASSIGN_OR_RETURN(l.k, get(m + ".k_proj.weight", false));
          ASSIGN_OR_RETURN(l.v, get(m + ".v_proj.weight", false));
          ASSIGN_OR_RETURN(l.o, get(m + ".o_proj.weight", false));
          break;
        }
        case core::LayerKind::kMlp: {
          ASSIGN_OR_RETURN(l.up, get(m + ".up_proj.weight", false));
          ASSIGN_OR_RETURN(l.down, get(m + ".down_proj.weight", false));
          break;
        }
      }
      layers.push_back(l);
    }
    ASSIGN_OR_RETURN(norm_f, get("backbone.norm_f.weight", false));
    ASSIGN_OR_RETURN(lm_head, get("lm_head.weight", false));
    return absl::OkStatus();
  }

  absl::Status Start(int ordinal) {
    device = ordinal;
    RETURN_IF_ERROR(kc::SetDevice(ordinal));
    ASSIGN_OR_RETURN(stream, kc::CreateStream());
    ASSIGN_OR_RETURN(gemm, kc::GemmHandle::Create());
    elem = bf16 ? 2 : 4;
    return absl::OkStatus();
  }

  absl::Status AllocateState(const StateCapacity& cap) {
    if (cap.num_slots < 0 || cap.num_blocks < 0 || cap.block_size < 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad state capacity: ", cap.num_slots,
                                                     " slots, ", cap.num_blocks, " blocks of ",
                                                     cap.block_size));
    }
    if (cap.num_snapshots != 0) {
      return absl::UnimplementedError(absl::StrCat("the CUDA model does not implement ",
                                                   "prefix-cache snapshots (num_snapshots ",
                                                   cap.num_snapshots, ")"));
    }
    RETURN_IF_ERROR(kc::SetDevice(device));
    RETURN_IF_ERROR(kc::Synchronize(stream));
    for (void* p : state_allocs) RETURN_IF_ERROR(kc::Free(p));
    state_allocs.clear();
    state_bytes = 0;
    capacity = StateCapacity{};
    const core::ModelConfig& c = config;
    const auto zeroed = [&](size_t bytes) -> absl::StatusOr<void*> {
      ASSIGN_OR_RETURN(void* p, Alloc(state_allocs, bytes));
      RETURN_IF_ERROR(kc::Memset(p, 0, bytes, stream));
      state_bytes += bytes;
      return p;
    };
    for (Layer& l : layers) {
      if (l.kind == core::LayerKind::kMamba) {
        const size_t conv = static_cast<size_t>(cap.num_slots * c.conv_dim() * (c.conv_kernel - 1));
        const size_t ssm = static_cast<size_t>(cap.num_slots * c.mamba_num_heads *
                                               c.mamba_head_dim * c.ssm_state_size);
        ASSIGN_OR_RETURN(l.conv_state, zeroed(conv * elem));
        ASSIGN_OR_RETURN(void* s, zeroed(ssm * 4));
        l.ssm_state = static_cast<float*>(s);
      } else if (l.kind == core::LayerKind::kAttention) {
        const size_t kv = static_cast<size_t>(cap.num_blocks * cap.block_size *
                                              c.num_key_value_heads * c.head_dim);
        ASSIGN_OR_RETURN(l.k_cache, zeroed(kv * elem));
        ASSIGN_OR_RETURN(l.v_cache, zeroed(kv * elem));
      }
    }
    RETURN_IF_ERROR(kc::Synchronize(stream));
    capacity = cap;
    return absl::OkStatus();
  }

  // Grows the workspace (between steps only: the stream is idle then).
  absl::Status Reserve(int64_t tokens, int64_t rows) {
    if (workspace != nullptr && tokens <= ws.max_tokens && rows <= ws.max_rows) {
      return absl::OkStatus();
    }
    const int64_t t = std::max({tokens, ws.max_tokens, int64_t{1}});
    const int64_t r = std::max({rows, ws.max_rows, int64_t{1}});
    RETURN_IF_ERROR(kc::Synchronize(stream));
    if (workspace != nullptr) {
      RETURN_IF_ERROR(kc::Free(workspace));
      workspace = nullptr;
    }
    ws = LayoutWorkspace(config, 0, config.num_hidden_layers, t, r, elem);
    ASSIGN_OR_RETURN(workspace, kc::Malloc(ws.total_bytes));
    return absl::OkStatus();
  }

  absl::Status ReserveMeta(size_t bytes) {
    if (bytes <= meta_bytes) return absl::OkStatus();
    const size_t want = std::max(bytes, size_t{4096});
    RETURN_IF_ERROR(kc::Synchronize(stream));
    if (meta_device != nullptr) RETURN_IF_ERROR(kc::Free(meta_device));
    if (meta_host != nullptr) RETURN_IF_ERROR(kc::FreeHost(meta_host));
    meta_device = meta_host = nullptr;
    meta_bytes = 0;
    ASSIGN_OR_RETURN(meta_device, kc::Malloc(want));
    ASSIGN_OR_RETURN(meta_host, kc::MallocHost(want));
    meta_bytes = want;
    return absl::OkStatus();
  }

  // The f32 [rows, vocab] tensor the logits are copied into (pinned when possible; a failed
  // pinned allocation falls back to pageable memory).
  core::Tensor LogitsTensor(int64_t rows, int64_t vocab) {
    const size_t bytes = static_cast<size_t>(rows * vocab) * sizeof(float);
    if (logits_host == nullptr || logits_host.use_count() > 1 || logits_host_bytes < bytes) {
      logits_host.reset();
      logits_host_bytes = 0;
      absl::StatusOr<void*> p = kc::MallocHost(bytes);
      if (!p.ok()) return core::Tensor::Empty(core::DType::kF32, {rows, vocab});
      logits_host = std::shared_ptr<void>(*p, [](void* q) { (void)kc::FreeHost(q); });
      logits_host_bytes = bytes;
    }
    return core::Tensor::ViewOf(logits_host, logits_host.get(), core::DType::kF32, {rows, vocab});
  }

  template <typename T>
  T* At(size_t offset) {
    return reinterpret_cast<T*>(static_cast<char*>(workspace) + offset);
  }

  template <typename T>
  absl::Status Linear(const void* x, const void* w, T* y, int64_t tokens, int64_t in, int64_t out) {
    kc::LinearParams<T> p;
    p.x = static_cast<const T*>(x);
    p.w = static_cast<const T*>(w);
    p.y = y;
    p.num_tokens = tokens;
    p.in_features = in;
    p.out_features = out;
    return gemm->Linear<T>(p, stream);
  }

  struct DeviceMeta {
    const int32_t *token_ids, *cu_seqlens, *slots, *start_pos, *block_tables, *logits_rows;
    const uint8_t* has_initial_state;
  };

  template <typename T>
  absl::Status Mamba(const Layer& l, const PackedStep& ps, const DeviceMeta& dm, const T* x,
                     T* out) {
    const core::ModelConfig& c = config;
    const int64_t tokens = ps.num_tokens, in_dim = c.in_proj_dim(), conv_dim = c.conv_dim();
    const int64_t d_inner = c.d_inner(), gn = c.n_groups * c.ssm_state_size;
    T* zxbcdt = At<T>(ws.scratch);
    T* xbc = reinterpret_cast<T*>(reinterpret_cast<char*>(zxbcdt) +
                                  AlignUp(static_cast<size_t>(tokens * in_dim) * sizeof(T)));
    T* y = reinterpret_cast<T*>(reinterpret_cast<char*>(xbc) +
                                AlignUp(static_cast<size_t>(tokens * conv_dim) * sizeof(T)));
    RETURN_IF_ERROR(Linear<T>(x, l.in_proj, zxbcdt, tokens, c.hidden_size, in_dim));
    const T* conv_bias = static_cast<const T*>(l.conv_b);
    if (ps.pure_decode) {
      kc::CausalConv1dUpdateParams<T> p;
      p.x = zxbcdt + d_inner;
      p.weight = static_cast<const T*>(l.conv_w);
      p.bias = conv_bias;
      p.slots = dm.slots;
      p.conv_state = static_cast<T*>(l.conv_state);
      p.out = xbc;
      p.batch = ps.num_seqs;
      p.channels = conv_dim;
      p.kernel = c.conv_kernel;
      p.num_slots = capacity.num_slots;
      p.x_stride = in_dim;
      RETURN_IF_ERROR(kc::CausalConv1dUpdate<T>(p, stream));
    } else {
      kc::CausalConv1dParams<T> p;
      p.x = zxbcdt + d_inner;
      p.weight = static_cast<const T*>(l.conv_w);
      p.bias = conv_bias;
      p.cu_seqlens = dm.cu_seqlens;
      p.slots = dm.slots;
      p.has_initial_state = dm.has_initial_state;
      p.conv_state = static_cast<T*>(l.conv_state);
      p.out = xbc;
      p.num_seqs = ps.num_seqs;
      p.channels = conv_dim;
      p.kernel = c.conv_kernel;
      p.num_slots = capacity.num_slots;
      p.x_stride = in_dim;
      p.num_tokens = tokens;
      RETURN_IF_ERROR(kc::CausalConv1d<T>(p, stream));
    }
    const auto fill_scan = [&](auto& p) {
      p.x = xbc;
      p.x_stride = conv_dim;
      p.B = xbc + d_inner;
      p.b_stride = conv_dim;
      p.C = xbc + d_inner + gn;
      p.c_stride = conv_dim;
      p.dt = zxbcdt + d_inner + conv_dim;
      p.dt_stride = in_dim;
      p.A_log = l.a_log;
      p.D = l.d;
      p.dt_bias = l.dt_bias;
      p.slots = dm.slots;
      p.ssm_state = l.ssm_state;
      p.y = y;
      p.num_heads = c.mamba_num_heads;
      p.head_dim = c.mamba_head_dim;
      p.n_groups = c.n_groups;
      p.state_size = c.ssm_state_size;
      p.num_slots = capacity.num_slots;
    };
    if (ps.pure_decode) {
      kc::SelectiveStateUpdateParams<T> p;
      fill_scan(p);
      p.batch = ps.num_seqs;
      RETURN_IF_ERROR(kc::SelectiveStateUpdate<T>(p, stream));
    } else {
      kc::SsmScanParams<T> p;
      fill_scan(p);
      p.cu_seqlens = dm.cu_seqlens;
      p.has_initial_state = dm.has_initial_state;
      p.num_seqs = ps.num_seqs;
      RETURN_IF_ERROR(kc::SsdChunkScan<T>(p, stream));
    }
    kc::GatedRmsNormParams<T> norm;
    norm.y = y;
    norm.z = zxbcdt;
    norm.z_stride = in_dim;
    norm.weight = static_cast<const T*>(l.gated_norm);
    norm.out = y;
    norm.num_tokens = tokens;
    norm.dim = d_inner;
    norm.group_size = d_inner / c.n_groups;
    norm.eps = static_cast<float>(c.layer_norm_epsilon);
    RETURN_IF_ERROR(kc::GatedRmsNorm<T>(norm, stream));
    return Linear<T>(y, l.out_proj, out, tokens, d_inner, c.hidden_size);
  }

  template <typename T>
  absl::Status Attention(const Layer& l, const PackedStep& ps, const DeviceMeta& dm, const T* x,
                         T* out) {
    const core::ModelConfig& c = config;
    const int64_t tokens = ps.num_tokens, qw = c.q_dim(), kvw = c.kv_dim();
    char* base = static_cast<char*>(workspace) + ws.scratch;
    const size_t qb = AlignUp(static_cast<size_t>(tokens * qw) * sizeof(T));
    const size_t kvb = AlignUp(static_cast<size_t>(tokens * kvw) * sizeof(T));
    T* q = reinterpret_cast<T*>(base);
    T* k = reinterpret_cast<T*>(base + qb);
    T* v = reinterpret_cast<T*>(base + qb + kvb);
    T* o = reinterpret_cast<T*>(base + qb + 2 * kvb);
    RETURN_IF_ERROR(Linear<T>(x, l.q, q, tokens, c.hidden_size, qw));
    RETURN_IF_ERROR(Linear<T>(x, l.k, k, tokens, c.hidden_size, kvw));
    RETURN_IF_ERROR(Linear<T>(x, l.v, v, tokens, c.hidden_size, kvw));
    kc::PagedAttentionParams<T> p;
    p.q = q;
    p.k = k;
    p.v = v;
    p.cu_seqlens = dm.cu_seqlens;
    p.start_pos = dm.start_pos;
    p.block_tables = dm.block_tables;
    p.k_cache = static_cast<T*>(l.k_cache);
    p.v_cache = static_cast<T*>(l.v_cache);
    p.out = o;
    p.num_seqs = ps.num_seqs;
    p.num_q_heads = c.num_attention_heads;
    p.num_kv_heads = c.num_key_value_heads;
    p.head_dim = c.head_dim;
    p.block_size = capacity.block_size;
    p.num_blocks = capacity.num_blocks;
    p.max_blocks_per_seq = ps.max_blocks_per_seq;
    p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    p.bf16_probs = bf16;
    p.num_tokens = tokens;
    p.max_query_len = ps.max_query_len;
    RETURN_IF_ERROR(kc::PagedAttention<T>(p, stream));
    return Linear<T>(o, l.o, out, tokens, qw, c.hidden_size);
  }

  template <typename T>
  absl::Status Mlp(const Layer& l, const PackedStep& ps, const T* x, T* out) {
    const core::ModelConfig& c = config;
    const int64_t tokens = ps.num_tokens, ffn = c.intermediate_size;
    T* h = At<T>(ws.scratch);
    RETURN_IF_ERROR(Linear<T>(x, l.up, h, tokens, c.hidden_size, ffn));
    RETURN_IF_ERROR(kc::ReluSquared<T>(h, tokens * ffn, stream));
    return Linear<T>(h, l.down, out, tokens, ffn, c.hidden_size);
  }

  template <typename T>
  absl::StatusOr<StepLogits> Run(const StepPlan& plan) {
    RETURN_IF_ERROR(CheckNoSnapshots(plan));
    RETURN_IF_ERROR(ValidateStepPlan(config, capacity, 0, config.num_hidden_layers, plan));
    RETURN_IF_ERROR(kc::SetDevice(device));
    PackedStep ps = PackStep(plan);
    // Everything that may allocate happens here, before the first kernel of the step.
    RETURN_IF_ERROR(Reserve(ps.num_tokens, ps.num_logits_rows));
    const size_t meta_size = ps.buffer.size() * sizeof(int32_t);
    RETURN_IF_ERROR(ReserveMeta(meta_size));
    StepLogits result;
    result.row_begin = ps.row_begin;
    result.row_count = ps.row_count;
    result.logits = LogitsTensor(ps.num_logits_rows, config.vocab_size);
    std::memcpy(meta_host, ps.buffer.data(), meta_size);
    RETURN_IF_ERROR(kc::CopyToDeviceAsync(meta_device, meta_host, meta_size, stream));
    const int32_t* md = static_cast<const int32_t*>(meta_device);
    DeviceMeta dm;
    dm.token_ids = md + ps.token_ids;
    dm.cu_seqlens = md + ps.cu_seqlens;
    dm.slots = md + ps.slots;
    dm.start_pos = md + ps.start_pos;
    dm.block_tables = md + ps.block_tables;
    dm.logits_rows = md + ps.logits_rows;
    dm.has_initial_state = reinterpret_cast<const uint8_t*>(md + ps.has_initial_state);

    const core::ModelConfig& c = config;
    const int64_t tokens = ps.num_tokens, h = c.hidden_size;
    const float eps = static_cast<float>(c.layer_norm_epsilon);
    T* hidden = At<T>(ws.hidden);
    T* normed = At<T>(ws.normed);
    T* mixed = At<T>(ws.mixer_out);

    kc::EmbeddingParams<T> embed;
    embed.ids = dm.token_ids;
    embed.table = static_cast<const T*>(embedding);
    embed.out = hidden;
    embed.num_tokens = tokens;
    embed.hidden = h;
    embed.vocab_begin = 0;
    embed.vocab_local = c.vocab_size;
    RETURN_IF_ERROR(kc::Embedding<T>(embed, stream));

    // Block i: hidden += mixer_{i-1} output (fused), normed = RMSNorm_i(hidden), mixer_i.
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      kc::RmsNormParams<T> norm;
      norm.x = i == 0 ? hidden : mixed;
      norm.residual = i == 0 ? nullptr : hidden;
      norm.weight = static_cast<const T*>(l.norm);
      norm.out = normed;
      norm.num_tokens = tokens;
      norm.hidden = h;
      norm.eps = eps;
      RETURN_IF_ERROR(kc::RmsNorm<T>(norm, stream));
      switch (l.kind) {
        case core::LayerKind::kMamba:
          RETURN_IF_ERROR(Mamba<T>(l, ps, dm, normed, mixed));
          break;
        case core::LayerKind::kAttention:
          RETURN_IF_ERROR(Attention<T>(l, ps, dm, normed, mixed));
          break;
        case core::LayerKind::kMlp:
          RETURN_IF_ERROR(Mlp<T>(l, ps, normed, mixed));
          break;
      }
    }
    const int64_t rows = ps.num_logits_rows, vocab = c.vocab_size;
    if (rows > 0) {
      // The last residual add fused with norm_f over all tokens, then the requested rows are
      // gathered (an embedding lookup into the normed rows: an exact copy) for lm_head.
      kc::RmsNormParams<T> norm;
      norm.x = mixed;
      norm.residual = hidden;
      norm.weight = static_cast<const T*>(norm_f);
      norm.out = normed;
      norm.num_tokens = tokens;
      norm.hidden = h;
      norm.eps = eps;
      RETURN_IF_ERROR(kc::RmsNorm<T>(norm, stream));
      T* gathered = At<T>(ws.rows);
      kc::EmbeddingParams<T> gather;
      gather.ids = dm.logits_rows;
      gather.table = normed;
      gather.out = gathered;
      gather.num_tokens = rows;
      gather.hidden = h;
      gather.vocab_begin = 0;
      gather.vocab_local = tokens;
      RETURN_IF_ERROR(kc::Embedding<T>(gather, stream));
      T* logits = At<T>(ws.logits);
      RETURN_IF_ERROR(Linear<T>(gathered, lm_head, logits, rows, h, vocab));
      float* logits_f32 = At<float>(ws.logits_f32);
      if constexpr (std::is_same_v<T, kc::Bf16>) {
        RETURN_IF_ERROR(kc::ConvertBf16ToF32(logits, logits_f32, rows * vocab, stream));
      }
      RETURN_IF_ERROR(kc::CopyToHostAsync(result.logits.raw(), logits_f32,
                                          static_cast<size_t>(rows * vocab) * sizeof(float),
                                          stream));
    }
    RETURN_IF_ERROR(kc::Synchronize(stream));
    return result;
  }
};

absl::StatusOr<core::ModelConfig> TruncateLayers(const core::ModelConfig& config,
                                                 int64_t num_layers) {
  if (num_layers == 0) return config;
  if (num_layers < 0 || num_layers > config.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("--layers ", num_layers, " is not in [1, ", config.num_hidden_layers, "]"));
  }
  core::ModelConfig c = config;
  c.num_hidden_layers = num_layers;
  c.layers.resize(static_cast<size_t>(num_layers));
  if (static_cast<int64_t>(c.hybrid_override_pattern.size()) >= num_layers) {
    c.hybrid_override_pattern = c.hybrid_override_pattern.substr(0, num_layers);
  }
  return c;
}

namespace {

absl::Status CheckShardOptions(const ModelOptions& options, const core::ModelConfig& config) {
  if (options.tp.size != 1) {
    return absl::UnimplementedError(
        absl::StrCat("the CUDA model runs tp=1 only, got tp=", options.tp.size));
  }
  const int64_t end = options.layer_end < 0 ? config.num_hidden_layers : options.layer_end;
  if (options.layer_begin != 0 || end != config.num_hidden_layers) {
    return absl::UnimplementedError(absl::StrCat("the CUDA model runs all layers only, got [",
                                                 options.layer_begin, ", ", end, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

CudaNemotronHModel::CudaNemotronHModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaNemotronHModel::~CudaNemotronHModel() = default;

absl::StatusOr<std::unique_ptr<CudaNemotronHModel>> CudaNemotronHModel::Load(
    const std::string& dir, const ModelOptions& options, int device) {
  ASSIGN_OR_RETURN(
      core::ModelConfig config,
      core::ModelConfig::FromFile((std::filesystem::path(dir) / "config.json").string()));
  ASSIGN_OR_RETURN(core::Checkpoint checkpoint, core::Checkpoint::Open(dir));
  return Load(config, checkpoint, options, device);
}

absl::StatusOr<std::unique_ptr<CudaNemotronHModel>> CudaNemotronHModel::Load(
    const core::ModelConfig& config, const core::Checkpoint& checkpoint,
    const ModelOptions& options, int device) {
  RETURN_IF_ERROR(core::ValidateCheckpoint(config, checkpoint));
  RETURN_IF_ERROR(CheckShardOptions(options, config));
  ASSIGN_OR_RETURN(const std::string embedding_name, core::EmbeddingName(checkpoint));
  ASSIGN_OR_RETURN(core::TensorInfo embedding_info, checkpoint.Info(embedding_name));
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->bf16 = embedding_info.dtype == core::DType::kBF16;
  RETURN_IF_ERROR(impl->Start(device));
  WeightLoader loader(&checkpoint);
  const WeightSource source = [&](const std::string& name) {
    return loader.Load(config, name, 1, 0);
  };
  RETURN_IF_ERROR(impl->LoadWeights(source, embedding_name));
  return std::unique_ptr<CudaNemotronHModel>(new CudaNemotronHModel(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<CudaNemotronHModel>> CudaNemotronHModel::LoadSynthetic(
    const core::ModelConfig& full_config, const SyntheticOptions& synthetic, int device) {
  if (synthetic.dtype != core::DType::kBF16 && synthetic.dtype != core::DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic weights are bf16 or f32, got ", core::DTypeName(synthetic.dtype)));
  }
  ASSIGN_OR_RETURN(core::ModelConfig config, TruncateLayers(full_config, synthetic.num_layers));
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->bf16 = synthetic.dtype == core::DType::kBF16;
  RETURN_IF_ERROR(impl->Start(device));
  // One tensor at a time: generated on all host cores, uploaded, dropped.
  std::map<std::string, core::Shape> shapes;
  for (const core::ExpectedTensor& t : core::ExpectedTensors(config)) shapes[t.name] = t.shape;
  const WeightSource source = [&](const std::string& name) -> absl::StatusOr<core::Tensor> {
    auto it = shapes.find(name);
    if (it == shapes.end()) {
      return absl::NotFoundError(absl::StrCat("the config lists no tensor ", name));
    }
    return SyntheticTensor(config, name, it->second, synthetic.seed, synthetic.dtype);
  };
  RETURN_IF_ERROR(impl->LoadWeights(source, "backbone.embeddings.weight"));
  return std::unique_ptr<CudaNemotronHModel>(new CudaNemotronHModel(std::move(impl)));
}

const core::ModelConfig& CudaNemotronHModel::config() const { return impl_->config; }
bool CudaNemotronHModel::rounds_to_bf16() const { return impl_->bf16; }
bool CudaNemotronHModel::has_attention() const {
  return impl_->config.CountLayers(core::LayerKind::kAttention) > 0;
}
uint64_t CudaNemotronHModel::weight_bytes() const { return impl_->weight_bytes; }
uint64_t CudaNemotronHModel::state_bytes() const { return impl_->state_bytes; }
const StateCapacity& CudaNemotronHModel::capacity() const { return impl_->capacity; }

absl::Status CudaNemotronHModel::AllocateState(const StateCapacity& capacity) {
  return impl_->AllocateState(capacity);
}

absl::Status CudaNemotronHModel::Reserve(int64_t tokens, int64_t rows) {
  RETURN_IF_ERROR(kc::SetDevice(impl_->device));
  return impl_->Reserve(tokens, rows);
}

absl::Status CudaNemotronHModel::ValidatePlan(const StepPlan& plan) const {
  RETURN_IF_ERROR(CheckNoSnapshots(plan));
  return ValidateStepPlan(impl_->config, impl_->capacity, 0, impl_->config.num_hidden_layers, plan);
}

absl::StatusOr<StepLogits> CudaNemotronHModel::Step(const StepPlan& plan) {
  absl::StatusOr<StepLogits> out =
      impl_->bf16 ? impl_->Run<kc::Bf16>(plan) : impl_->Run<float>(plan);
  // A step that failed part-way may have left work queued (the metadata copy reads the pinned
  // buffer): drain it so that the next step can reuse the buffers. Its error, if any, is the
  // failed step's.
  if (!out.ok() && impl_->stream != nullptr) (void)kc::Synchronize(impl_->stream);
  return out;
}

}  // namespace tandem::model::cuda
