#include "kernels/cpu/ssd_scan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/logging.h"
#include "core/thread_pool.h"
#include "kernels/cpu/elementwise.h"

namespace tandem::kernels::cpu {

namespace {

// Strides resolved once (0 means dense).
struct Layout {
  int64_t x, dt, b, c, state_slot, state_head;
};

Layout CheckAndLayout(const SsmScanParams& p) {
  TANDEM_CHECK(p.x != nullptr && p.dt != nullptr && p.A_log != nullptr && p.B != nullptr &&
               p.C != nullptr && p.D != nullptr && p.dt_bias != nullptr &&
               p.cu_seqlens != nullptr && p.slots != nullptr && p.has_initial_state != nullptr &&
               p.ssm_state != nullptr && p.y != nullptr);
  TANDEM_CHECK(p.num_heads > 0 && p.head_dim > 0 && p.state_size > 0 && p.n_groups > 0);
  TANDEM_CHECK(p.num_heads % p.n_groups == 0)
      << "num_heads " << p.num_heads << " n_groups " << p.n_groups;
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    TANDEM_CHECK(p.cu_seqlens[s + 1] >= p.cu_seqlens[s]);
    TANDEM_CHECK(p.slots[s] >= 0 && p.slots[s] < p.num_slots) << "slot " << p.slots[s];
  }
  Layout l;
  l.x = p.x_stride == 0 ? p.num_heads * p.head_dim : p.x_stride;
  l.dt = p.dt_stride == 0 ? p.num_heads : p.dt_stride;
  l.b = p.b_stride == 0 ? p.n_groups * p.state_size : p.b_stride;
  l.c = p.c_stride == 0 ? p.n_groups * p.state_size : p.c_stride;
  l.state_head = p.head_dim * p.state_size;
  l.state_slot = p.num_heads * l.state_head;
  return l;
}

// The state of head j of sequence s, zeroed first when the sequence starts fresh.
float* LoadState(const SsmScanParams& p, const Layout& l, int64_t s, int64_t j) {
  float* S = p.ssm_state + p.slots[s] * l.state_slot + j * l.state_head;
  if (p.has_initial_state[s] == 0) std::fill(S, S + l.state_head, 0.0f);
  return S;
}

// The sequential recurrence for head j of sequence s.
void SequentialScanHead(const SsmScanParams& p, const Layout& l, int64_t s, int64_t j) {
  const int64_t P = p.head_dim, N = p.state_size;
  float* S = LoadState(p, l, s, j);
  const int64_t g = j / (p.num_heads / p.n_groups);
  const float A = -std::exp(p.A_log[j]);
  for (int64_t t = p.cu_seqlens[s]; t < p.cu_seqlens[s + 1]; ++t) {
    const float dt = Softplus(p.dt[t * l.dt + j] + p.dt_bias[j]);
    const float decay = std::exp(dt * A);
    const float* x = p.x + t * l.x + j * P;
    const float* B = p.B + t * l.b + g * N;
    const float* C = p.C + t * l.c + g * N;
    float* y = p.y + (t * p.num_heads + j) * P;
    for (int64_t q = 0; q < P; ++q) {
      float* row = S + q * N;
      double acc = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        row[n] = row[n] * decay + dt * B[n] * x[q];
        acc += static_cast<double>(row[n]) * C[n];
      }
      y[q] = static_cast<float>(acc) + p.D[j] * x[q];
    }
  }
}

// Chunked SSD scan of heads [head_begin, head_end) (all in one group) of sequence s.
void ChunkScanHeads(const SsmScanParams& p, const Layout& l, int64_t s, int64_t head_begin,
                    int64_t head_end, int64_t chunk_size) {
  const int64_t P = p.head_dim, N = p.state_size;
  const int64_t g = head_begin / (p.num_heads / p.n_groups);
  const int64_t begin = p.cu_seqlens[s], end = p.cu_seqlens[s + 1];
  const int64_t L_max = std::min<int64_t>(chunk_size, std::max<int64_t>(end - begin, 1));
  std::vector<float> cb(L_max * L_max);  // cb[t][u] = C_t . B_u within the chunk
  std::vector<float> dtv(L_max), a(L_max), seg(L_max), w(L_max), y_acc(P);
  std::vector<float*> states;
  for (int64_t j = head_begin; j < head_end; ++j) states.push_back(LoadState(p, l, s, j));
  std::vector<float> new_state(P * N);

  for (int64_t c0 = begin; c0 < end; c0 += chunk_size) {
    const int64_t L = std::min(chunk_size, end - c0);
    const float* Bg = p.B + g * N;
    const float* Cg = p.C + g * N;
    for (int64_t t = 0; t < L; ++t) {
      for (int64_t u = 0; u <= t; ++u) {
        cb[t * L + u] = Dot(Cg + (c0 + t) * l.c, Bg + (c0 + u) * l.b, N);
      }
    }
    for (int64_t j = head_begin; j < head_end; ++j) {
      float* S = states[j - head_begin];
      const float A = -std::exp(p.A_log[j]);
      for (int64_t t = 0; t < L; ++t) {
        dtv[t] = Softplus(p.dt[(c0 + t) * l.dt + j] + p.dt_bias[j]);
        a[t] = dtv[t] * A;
      }
      // Output of each token: intra-chunk quadratic form + decayed contribution of the chunk's
      // initial state + D skip.
      float cum = 0.0f;  // sum of a[0..t]: decay of the initial state up to token t
      for (int64_t t = 0; t < L; ++t) {
        cum += a[t];
        // seg[u] = sum of a[u+1..t] (segment sum), built backwards from u = t.
        seg[t] = 0.0f;
        for (int64_t u = t - 1; u >= 0; --u) seg[u] = seg[u + 1] + a[u + 1];
        for (int64_t u = 0; u <= t; ++u) w[u] = cb[t * L + u] * std::exp(seg[u]) * dtv[u];
        const float decay0 = std::exp(cum);
        const float* Ct = Cg + (c0 + t) * l.c;
        float* yt = p.y + (c0 + t) * p.num_heads * P + j * P;
        for (int64_t q = 0; q < P; ++q) {
          const float inter = Dot(S + q * N, Ct, N);
          y_acc[q] = decay0 * inter;
        }
        for (int64_t u = 0; u <= t; ++u) {
          const float* xu = p.x + (c0 + u) * l.x + j * P;
          for (int64_t q = 0; q < P; ++q) y_acc[q] += w[u] * xu[q];
        }
        const float* xt = p.x + (c0 + t) * l.x + j * P;
        for (int64_t q = 0; q < P; ++q) yt[q] = y_acc[q] + p.D[j] * xt[q];
      }
      // Chunk state passing: S <- exp(sum a) * S + sum_u exp(seg(L-1, u)) dt_u x_u (outer) B_u.
      seg[L - 1] = 0.0f;
      for (int64_t u = L - 2; u >= 0; --u) seg[u] = seg[u + 1] + a[u + 1];
      for (int64_t u = 0; u < L; ++u) w[u] = std::exp(seg[u]) * dtv[u];
      const float decay_all = std::exp(cum);
      for (int64_t q = 0; q < P; ++q) {
        float* row = new_state.data() + q * N;
        for (int64_t n = 0; n < N; ++n) row[n] = decay_all * S[q * N + n];
        for (int64_t u = 0; u < L; ++u) {
          const float coef = w[u] * p.x[(c0 + u) * l.x + j * P + q];
          const float* Bu = Bg + (c0 + u) * l.b;
          for (int64_t n = 0; n < N; ++n) row[n] += coef * Bu[n];
        }
      }
      std::memcpy(S, new_state.data(), sizeof(float) * P * N);
    }
  }
}

}  // namespace

void SsmScan(const SsmScanParams& p) {
  const Layout l = CheckAndLayout(p);
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    for (int64_t j = 0; j < p.num_heads; ++j) SequentialScanHead(p, l, s, j);
  }
}

void SsmScanFast(const SsmScanParams& p) {
  const Layout l = CheckAndLayout(p);
  const int64_t P = p.head_dim, N = p.state_size;
  // Small problems run inline: a task should carry at least ~64k state updates.
  const int64_t tokens = p.num_seqs > 0 ? p.cu_seqlens[p.num_seqs] : 0;
  const int64_t work_per_task =
      std::max<int64_t>(1, tokens * P * N / std::max<int64_t>(1, p.num_seqs));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / work_per_task);
  core::ThreadPool::Default().ParallelFor(
      p.num_seqs * p.num_heads,
      [&](int64_t begin, int64_t end) {
        std::vector<float> dtB(N);
        for (int64_t task = begin; task < end; ++task) {
          const int64_t s = task / p.num_heads, j = task % p.num_heads;
          float* S = LoadState(p, l, s, j);
          const int64_t g = j / (p.num_heads / p.n_groups);
          const float A = -std::exp(p.A_log[j]);
          for (int64_t t = p.cu_seqlens[s]; t < p.cu_seqlens[s + 1]; ++t) {
            const float dt = Softplus(p.dt[t * l.dt + j] + p.dt_bias[j]);
            const float decay = std::exp(dt * A);
            const float* x = p.x + t * l.x + j * P;
            const float* B = p.B + t * l.b + g * N;
            const float* C = p.C + t * l.c + g * N;
            float* y = p.y + (t * p.num_heads + j) * P;
            for (int64_t n = 0; n < N; ++n) dtB[n] = dt * B[n];
            for (int64_t q = 0; q < P; ++q) {
              float* row = S + q * N;
              const float xq = x[q];
              for (int64_t n = 0; n < N; ++n) row[n] = row[n] * decay + dtB[n] * xq;
              y[q] = Dot(row, C, N) + p.D[j] * xq;
            }
          }
        }
      },
      grain);
}

void SsdChunkScan(const SsmScanParams& p, int64_t chunk_size) {
  TANDEM_CHECK(chunk_size > 0) << "chunk_size " << chunk_size;
  const Layout l = CheckAndLayout(p);
  const int64_t heads_per_group = p.num_heads / p.n_groups;
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    for (int64_t g = 0; g < p.n_groups; ++g) {
      ChunkScanHeads(p, l, s, g * heads_per_group, (g + 1) * heads_per_group, chunk_size);
    }
  }
}

void SsdChunkScanFast(const SsmScanParams& p, int64_t chunk_size) {
  TANDEM_CHECK(chunk_size > 0) << "chunk_size " << chunk_size;
  const Layout l = CheckAndLayout(p);
  core::ThreadPool& pool = core::ThreadPool::Default();
  const int64_t heads_per_group = p.num_heads / p.n_groups;
  // Tasks are (sequence, group, run of heads): split each group's heads into enough runs to keep
  // every thread busy; a run computes its group's C.B products once per chunk.
  const int64_t groups_total = std::max<int64_t>(p.num_seqs * p.n_groups, 1);
  const int64_t want_splits = (2 * pool.size() + groups_total - 1) / groups_total;
  const int64_t splits = std::clamp<int64_t>(want_splits, 1, heads_per_group);
  const int64_t run = (heads_per_group + splits - 1) / splits;
  const int64_t runs_per_group = (heads_per_group + run - 1) / run;
  const int64_t num_tasks = p.num_seqs * p.n_groups * runs_per_group;
  pool.ParallelFor(num_tasks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / (p.n_groups * runs_per_group);
      const int64_t g = (task / runs_per_group) % p.n_groups;
      const int64_t r = task % runs_per_group;
      const int64_t h0 = g * heads_per_group + r * run;
      const int64_t h1 = std::min(h0 + run, (g + 1) * heads_per_group);
      ChunkScanHeads(p, l, s, h0, h1, chunk_size);
    }
  });
}

}  // namespace tandem::kernels::cpu
