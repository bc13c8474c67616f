#include "worker/stage_executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "comm/tcp_rendezvous.h"
#include "core/status.h"
#include "kernels/cpu/sampling.h"
#include "model/batch_metadata.h"
#include "sharding/layer_partition.h"
#include "worker/sequence_sampling.h"
#include "worker/worker_metrics.h"

#ifdef TANDEM_WORKER_HAVE_GLOO
#include "comm/gloo_communicator.h"
#endif
#ifdef TANDEM_WORKER_HAVE_UCX
#include "comm/ucx_communicator.h"
#include "comm/ucx_transport.h"
#endif

namespace tandem::worker {

class StageExecutor::Reducer : public model::AllReducer {
 public:
  explicit Reducer(comm::Communicator* comm) : comm_(comm) {}
  absl::Status AllReduceSum(float* data, size_t n) override {
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = comm_->AllReduceSum(data, n);
    WorkerMetrics& m = WorkerMetrics::Get();
    m.allreduce_seconds->Increment(SecondsSince(start));
    m.allreduce_bytes->Increment(static_cast<double>(n * sizeof(float)));
    m.allreduce_calls->Increment();
    return s;
  }

 private:
  comm::Communicator* comm_;
};

namespace {

constexpr uint64_t kTagMask = comm::kMaxTransportTag;

// A communication failure breaks the replica: report it as UNAVAILABLE naming this rank.
absl::Status Broken(int rank, const absl::Status& s) {
  return absl::UnavailableError(absl::StrCat("worker rank ", rank, ": ", s.message()));
}

}  // namespace

StageExecutor::StageExecutor(sharding::ShardPlan plan, int rank)
    : plan_(std::move(plan)), rank_(rank) {}

StageExecutor::~StageExecutor() {
  // Peers still waiting on this rank (a group being rebuilt) fail now, not at their timeout.
  AbortCommunication(absl::UnavailableError("the worker dropped its shard"));
  model_.reset();
  pipeline_.reset();
  tp_comm_.reset();
}

void StageExecutor::AbortCommunication(const absl::Status& reason) {
  if (tp_comm_) tp_comm_->Abort(reason);
  if (pipeline_) pipeline_->Abort(reason);
}

absl::StatusOr<std::unique_ptr<StageExecutor>> StageExecutor::Create(const pb::LoadRequest& req) {
  const auto load_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(core::ModelConfig config,
                   core::ModelConfig::FromFile(
                       (std::filesystem::path(req.model_dir()) / "config.json").string()));
  sharding::ParallelConfig parallel{std::max(1, req.tp()), std::max(1, req.pp())};
  std::vector<sharding::LayerRange> partition;
  if (req.stage_layers_size() > 0) {
    ASSIGN_OR_RETURN(partition, sharding::PartitionFromSizes(
                                    config, std::vector<int64_t>(req.stage_layers().begin(),
                                                                 req.stage_layers().end())));
  }
  ASSIGN_OR_RETURN(sharding::ShardPlan plan,
                   sharding::ShardPlan::Create(config, parallel, std::move(partition)));
  if (req.rank() < 0 || req.rank() >= parallel.world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", req.rank(), " is outside [0, ", parallel.world_size(), ")"));
  }
  auto ex = std::unique_ptr<StageExecutor>(new StageExecutor(std::move(plan), req.rank()));
  const sharding::RankShard& shard = ex->shard();
  ex->model_dir_ = req.model_dir();
  ex->collective_ = req.collective().empty() ? "gloo" : req.collective();
  ex->timeout_ = absl::Milliseconds(req.comm_timeout_ms() > 0 ? req.comm_timeout_ms() : 30000);
  const std::string prefix = req.rendezvous_prefix().empty() ? "tandem" : req.rendezvous_prefix();
  std::unique_ptr<comm::TcpStoreClient> store;
  if (parallel.world_size() > 1) {
    if (req.rendezvous().empty()) {
      return absl::InvalidArgumentError("rendezvous: a store address is required when tp*pp > 1");
    }
    store = std::make_unique<comm::TcpStoreClient>(req.rendezvous(), ex->timeout_);
  }
  // The pipeline transport first: UCX reads its settings from the environment at creation.
  if (parallel.pp > 1) {
#ifdef TANDEM_WORKER_HAVE_UCX
    comm::UcxOptions o;
    o.rank = req.rank();
    o.size = parallel.world_size();
    o.store = store.get();
    o.prefix = absl::StrCat(prefix, "/pp");
    o.host = req.advertise_host();
    o.timeout = ex->timeout_;
    ASSIGN_OR_RETURN(ex->pipeline_, comm::UcxTransport::Create(o));
#else
    return absl::UnimplementedError("pp > 1 needs the UCX transport (built with TANDEM_UCX=OFF)");
#endif
  }
  if (parallel.tp > 1) {
    const std::string tp_prefix = absl::StrCat(prefix, "/tp/stage", shard.stage);
    if (ex->collective_ == "gloo") {
#ifdef TANDEM_WORKER_HAVE_GLOO
      comm::GlooOptions o;
      if (!req.advertise_host().empty()) o.hostname = req.advertise_host();
      o.rank = shard.tp_rank;
      o.size = parallel.tp;
      o.store = store.get();
      o.prefix = tp_prefix;
      o.timeout = ex->timeout_;
      ASSIGN_OR_RETURN(ex->tp_comm_, comm::GlooCommunicator::Create(o));
#else
      return absl::UnimplementedError("collective gloo: built with TANDEM_GLOO=OFF");
#endif
    } else if (ex->collective_ == "ucx") {
#ifdef TANDEM_WORKER_HAVE_UCX
      comm::UcxOptions o;
      o.rank = shard.tp_rank;
      o.size = parallel.tp;
      o.store = store.get();
      o.prefix = tp_prefix;
      o.host = req.advertise_host();
      o.timeout = ex->timeout_;
      ASSIGN_OR_RETURN(ex->tp_comm_, comm::UcxCommunicator::Create(o));
#else
      return absl::UnimplementedError("collective ucx: built with TANDEM_UCX=OFF");
#endif
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("collective: '", ex->collective_, "' is not one of gloo, ucx"));
    }
    ex->reducer_ = std::make_unique<Reducer>(ex->tp_comm_.get());
  }
  model::ModelOptions mo;
  mo.tp.rank = shard.tp_rank;
  mo.tp.size = parallel.tp;
  mo.tp.reducer = ex->reducer_.get();
  mo.layer_begin = shard.layers.begin;
  mo.layer_end = shard.layers.end;
  mo.reference_kernels = req.reference_kernels();
  ASSIGN_OR_RETURN(ex->model_, model::NemotronHModel::Load(req.model_dir(), mo));

  const pb::Capacity& want = req.capacity();
  ex->capacity_.set_num_slots(want.num_slots() > 0 ? want.num_slots() : 8);
  ex->capacity_.set_block_size(want.block_size() > 0 ? want.block_size() : 16);
  ex->capacity_.set_num_blocks(want.num_blocks() > 0 ? want.num_blocks() : 256);
  ex->capacity_.set_max_tokens_per_step(want.max_tokens_per_step() > 0 ? want.max_tokens_per_step()
                                                                       : 4096);
  // The snapshot pool: as many entries as asked for that fit the byte budget (an entry is this
  // rank's Mamba state of one slot; 0 bytes on a stage without Mamba layers).
  const uint64_t entry_bytes = ex->model_->snapshot_entry_bytes();
  int64_t snapshots = 0;
  if (want.num_snapshots() > 0 && req.snapshot_pool_bytes() > 0) {
    snapshots = entry_bytes == 0
                    ? want.num_snapshots()
                    : std::min<int64_t>(
                          want.num_snapshots(),
                          static_cast<int64_t>(static_cast<uint64_t>(req.snapshot_pool_bytes()) /
                                               entry_bytes));
  }
  // Snapshot ids are int32 in a plan.
  snapshots = std::min<int64_t>(snapshots, std::numeric_limits<int32_t>::max());
  ex->capacity_.set_num_snapshots(snapshots);
  model::StateCapacity cap;
  cap.num_slots = ex->capacity_.num_slots();
  cap.num_blocks = ex->model_->has_attention() ? ex->capacity_.num_blocks() : 0;
  cap.block_size = ex->capacity_.block_size();
  cap.num_snapshots = snapshots;
  ex->model_->AllocateState(cap);
  ex->snapshot_history_.assign(snapshots, History{});
  WorkerMetrics& m = WorkerMetrics::Get();
  m.weight_bytes->Set(static_cast<double>(ex->model_->weight_bytes()));
  m.state_bytes->Set(static_cast<double>(ex->model_->state_bytes()));
  m.snapshot_bytes->Set(static_cast<double>(ex->model_->snapshot_bytes()));
  m.checkpoint_bytes_read->Set(static_cast<double>(ex->model_->checkpoint_bytes_read()));
  m.load_seconds->Set(SecondsSince(load_start));
  m.loaded->Set(1);
  return ex;
}

bool StageExecutor::answers() const { return shard().last_stage && shard().tp_rank == 0; }

void StageExecutor::FillInfo(pb::InfoResponse* info) const {
  const sharding::RankShard& s = shard();
  pb::Layout* l = info->mutable_layout();
  l->set_tp(plan_.parallel().tp);
  l->set_pp(plan_.parallel().pp);
  l->set_rank(rank_);
  l->set_stage(s.stage);
  l->set_tp_rank(s.tp_rank);
  l->set_layer_begin(s.layers.begin);
  l->set_layer_end(s.layers.end);
  l->set_vocab_begin(s.vocab.begin);
  l->set_vocab_end(s.vocab.end);
  *info->mutable_capacity() = capacity_;
  if (!model_->has_attention()) info->mutable_capacity()->set_num_blocks(0);
  pb::Capabilities* c = info->mutable_capabilities();
  const core::ModelConfig& cfg = model_->config();
  c->set_backend("cpu");
  c->set_collective(plan_.parallel().tp > 1 ? collective_ : "none");
  c->set_checkpoint_dtype(model_->rounds_to_bf16() ? "bf16" : "f32");
  c->set_vocab_size(cfg.vocab_size);
  c->set_max_position_embeddings(cfg.max_position_embeddings);
  c->set_num_hidden_layers(cfg.num_hidden_layers);
  c->set_eos_token_id(static_cast<int32_t>(cfg.eos_token_id));
  c->set_supports_all_logits(true);
  c->set_max_top_logprobs(20);
  info->set_model_dir(model_dir_);
  info->set_weight_bytes(static_cast<int64_t>(model_->weight_bytes()));
  info->set_state_bytes(static_cast<int64_t>(model_->state_bytes()));
  info->set_snapshot_bytes(static_cast<int64_t>(model_->snapshot_bytes()));
  info->set_snapshot_entry_bytes(static_cast<int64_t>(model_->snapshot_entry_bytes()));
  info->set_checkpoint_bytes_read(static_cast<int64_t>(model_->checkpoint_bytes_read()));
}

void StageExecutor::Release(const std::vector<int32_t>& slots) {
  for (int32_t s : slots) history_.erase(s);
}

absl::StatusOr<pb::StepResponse> StageExecutor::Execute(const pb::StepRequest& req) {
  if (!broken_.ok()) return broken_;
  const auto start = std::chrono::steady_clock::now();
  model::StepPlan plan;
  for (int i = 0; i < req.sequences_size(); ++i) {
    const pb::SequenceStep& s = req.sequences(i);
    // -1 is the model's "none": a snapshot id that is present must be a real one.
    for (auto [what, has, id] :
         {std::tuple{"restore_snapshot", s.has_restore_snapshot(), s.restore_snapshot()},
          {"save_snapshot", s.has_save_snapshot(), s.save_snapshot()}}) {
      if (has && id < 0) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " (slot ", s.slot(),
                                                       "): ", what, " ", id, " is outside [0, ",
                                                       capacity_.num_snapshots(), ")"));
      }
    }
    model::SequenceStep m;
    m.restore_snapshot = s.has_restore_snapshot() ? s.restore_snapshot() : -1;
    m.save_snapshot = s.has_save_snapshot() ? s.save_snapshot() : -1;
    m.slot = s.slot();
    m.block_table.assign(s.block_table().begin(), s.block_table().end());
    m.start_pos = s.start_pos();
    m.token_ids.assign(s.token_ids().begin(), s.token_ids().end());
    m.logits = s.logits() == pb::LOGITS_ALL    ? model::LogitsRequest::kAll
               : s.logits() == pb::LOGITS_LAST ? model::LogitsRequest::kLast
                                               : model::LogitsRequest::kNone;
    plan.sequences.push_back(std::move(m));
  }
  // Every worker validates the same plan the same way, so all of them reject a bad plan
  // before any collective starts.
  RETURN_IF_ERROR(model_->ValidatePlan(plan));
  if (plan.num_tokens() > capacity_.max_tokens_per_step()) {
    return absl::InvalidArgumentError(
        absl::StrCat("step has ", plan.num_tokens(),
                     " tokens, more than max_tokens_per_step=", capacity_.max_tokens_per_step()));
  }
  const model::BatchMetadata meta = model::BatchMetadata::FromPlan(plan);
  const sharding::RankShard& s = shard();
  const int tp = plan_.parallel().tp;
  const int64_t h = model_->config().hidden_size;
  const size_t bytes = static_cast<size_t>(meta.num_tokens * h) * sizeof(float);
  std::vector<float> hidden(meta.num_tokens * h);
  const uint64_t tag = req.step_id() & kTagMask;
  absl::Status st;
  WorkerMetrics& wm = WorkerMetrics::Get();
  auto phase = [&wm](StepPhase p, std::chrono::steady_clock::time_point& t) {
    const auto now = std::chrono::steady_clock::now();
    wm.phase_seconds[static_cast<int>(p)]->Observe(std::chrono::duration<double>(now - t).count());
    t = now;
  };
  auto t = std::chrono::steady_clock::now();
  if (s.first_stage) {
    st = model_->Embed(meta, hidden.data());
    phase(StepPhase::kEmbed, t);
  } else {
    auto got = pipeline_->Recv(rank_ - tp, tag, hidden.data(), bytes, timeout_);
    wm.transfer_seconds_recv->Increment(SecondsSince(t));
    wm.transfer_bytes_recv->Increment(got.ok() ? static_cast<double>(*got) : 0.0);
    phase(StepPhase::kRecv, t);
    if (got.ok() && *got != bytes) {
      st = absl::InternalError(absl::StrCat("received ", *got, " bytes of hidden states from rank ",
                                            rank_ - tp, ", expected ", bytes));
    } else {
      st = got.status();
    }
  }
  if (st.ok()) st = model_->RunLayers(meta, hidden.data());
  phase(StepPhase::kLayers, t);
  if (st.ok() && !s.last_stage) {
    st = pipeline_->Send(rank_ + tp, tag, hidden.data(), bytes);
    wm.transfer_seconds_send->Increment(SecondsSince(t));
    wm.transfer_bytes_send->Increment(static_cast<double>(bytes));
    phase(StepPhase::kSend, t);
  }
  pb::StepResponse response;
  response.set_step_id(req.step_id());
  if (st.ok() && s.last_stage) {
    auto local = model_->Head(plan, hidden.data());
    phase(StepPhase::kHead, t);
    st = local.status();
    if (st.ok()) st = Sample(req, *local, &response);
    phase(StepPhase::kSample, t);
  }
  if (!st.ok()) {
    wm.step_errors->Increment();
    broken_ = Broken(rank_, st);
    // The rest of the group may be waiting on this rank in a collective or a pipeline transfer:
    // close every connection so they fail now (and the group is rebuilt in seconds), not at
    // their communication timeout.
    AbortCommunication(broken_);
    return broken_;
  }
  wm.steps->Increment();
  wm.step_tokens->Increment(static_cast<double>(meta.num_tokens));
  wm.step_seconds->Observe(SecondsSince(start));
  response.set_compute_us(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count());
  return response;
}

absl::Status StageExecutor::Sample(const pb::StepRequest& req, const model::StepLogits& local,
                                   pb::StepResponse* response) {
  // Every last-stage rank keeps the slots' token history (penalties are applied to each rank's own
  // vocabulary slice).
  for (int i = 0; i < req.sequences_size(); ++i) {
    const pb::SequenceStep& seq = req.sequences(i);
    History& hist = history_[seq.slot()];
    if (seq.start_pos() == 0) hist = History{};
    // A restored snapshot brings the token history it was saved with (start_pos > 0: no reset).
    if (seq.has_restore_snapshot()) hist = snapshot_history_[seq.restore_snapshot()];
    for (int j = 0; j < seq.token_ids_size(); ++j) {
      (seq.start_pos() + j < seq.prompt_len() ? hist.prompt : hist.output)
          .push_back(seq.token_ids(j));
    }
  }
  // Saves after every restore of the step, with the history through this step's tokens.
  for (const pb::SequenceStep& seq : req.sequences()) {
    if (seq.has_save_snapshot()) snapshot_history_[seq.save_snapshot()] = history_[seq.slot()];
  }
  bool wants_all = false;
  for (const pb::SequenceStep& seq : req.sequences()) {
    wants_all = wants_all || seq.logits() == pb::LOGITS_ALL;
  }
  // All-position logits are returned whole; otherwise each TP rank reduces its own vocabulary
  // slice and only per-row summaries travel between ranks.
  if (plan_.parallel().tp > 1 && !wants_all) return SampleSharded(req, local, response);
  return SampleGathered(req, local, response);
}

namespace {

// Fails one sequence of a step (the others are unaffected).
void FailSequence(const absl::Status& status, uint64_t tag, pb::SequenceResult* out) {
  out->set_token_id(-1);
  out->set_error_code(static_cast<int32_t>(status.code()));
  out->set_error(absl::StrCat("sequence ", tag, ": ", status.message()));
}

absl::Status NoCandidate() {
  return absl::InternalError("sampling left no candidate token (every logit was masked or -inf)");
}

}  // namespace

absl::Status StageExecutor::SampleGathered(const pb::StepRequest& req,
                                           const model::StepLogits& local,
                                           pb::StepResponse* response) {
  const int tp = plan_.parallel().tp;
  const int64_t rows = local.logits.dim(0);
  const int64_t vl = local.logits.dim(1);
  const int64_t vocab = vl * tp;
  // The requested rows of every rank's vocabulary slice, gathered.
  std::vector<float> full(rows * vocab);
  if (tp == 1) {
    std::memcpy(full.data(), local.logits.data<float>(), full.size() * sizeof(float));
  } else {
    std::vector<float> gathered(rows * vocab);
    if (rows > 0) {
      RETURN_IF_ERROR(tp_comm_->AllGather(local.logits.data<float>(), rows * vl * sizeof(float),
                                          gathered.data()));
    }
    for (int r = 0; r < tp; ++r) {
      for (int64_t i = 0; i < rows; ++i) {
        std::memcpy(&full[i * vocab + r * vl], &gathered[(r * rows + i) * vl], vl * sizeof(float));
      }
    }
  }
  if (!answers()) return absl::OkStatus();
  for (int i = 0; i < req.sequences_size(); ++i) {
    const pb::SequenceStep& seq = req.sequences(i);
    const History& hist = history_[seq.slot()];
    pb::SequenceResult* out = response->add_results();
    out->set_request_tag(seq.request_tag());
    out->set_token_id(-1);
    const int64_t count = local.row_count[i];
    if (count == 0) continue;
    const float* row0 = &full[local.row_begin[i] * vocab];
    if (seq.logits() == pb::LOGITS_ALL) {
      out->set_all_logits(row0, count * vocab * sizeof(float));
    }
    const absl::StatusOr<kernels::cpu::SamplingParams> params = SequenceSamplingParams(seq, vocab);
    if (!params.ok()) {
      FailSequence(params.status(), seq.request_tag(), out);
      continue;
    }
    std::vector<float> last(row0 + (count - 1) * vocab, row0 + count * vocab);
    std::vector<float> logprobs(vocab);
    kernels::cpu::LogSoftmax(last.data(), logprobs.data(), vocab);
    const int32_t token =
        kernels::cpu::Sample(last.data(), vocab, *params, hist.prompt, hist.output);
    if (token < 0 || token >= vocab) {
      FailSequence(NoCandidate(), seq.request_tag(), out);
      continue;
    }
    out->set_token_id(token);
    out->set_logprob(logprobs[token]);
    const int n = SequenceTopLogprobs(seq);
    for (const kernels::cpu::TokenScore& t : kernels::cpu::TopN(logprobs.data(), vocab, 0, n)) {
      pb::TokenLogprob* lp = out->add_top_logprobs();
      lp->set_token_id(t.token);
      lp->set_logprob(t.score);
    }
  }
  return absl::OkStatus();
}

// Sampling over a vocabulary split across the TP ranks of the last stage, with the same result as
// kernels::cpu::Sample on the whole row (kernels/cpu/sampling.h explains why each step is exact):
//   round 1 (always): per row, the raw logits' local max and sum of exp (-> log-softmax
//     normaliser), the local top-N raw logits (-> top logprobs), the local pick when it is already
//     final (greedy argmax, or Gumbel-max with no filter), and the local top-k candidates after
//     penalties and temperature (-> the global k-th value, masked locally);
//   round 2 (only rows with top-p): the top-k-filtered rows themselves, for top-p's global order;
//   round 3 (only if a row has min-p): the local max after the filters;
//   round 4 (only if a row's pick is not final yet): the local Gumbel-max picks.
// All ranks compute the same masks; TP rank 0 answers.
absl::Status StageExecutor::SampleSharded(const pb::StepRequest& req,
                                          const model::StepLogits& local,
                                          pb::StepResponse* response) {
  namespace kc = kernels::cpu;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int tp = plan_.parallel().tp;
  const int64_t vl = local.logits.dim(1);
  const int64_t vocab = vl * tp;
  const int64_t vbegin = model_->vocab_begin();
  // The sampled rows: the last requested position of each sequence with logits.
  struct Row {
    int seq = 0;
    kc::SamplingParams params;
    std::vector<float> raw;   // this rank's slice of the raw logits
    std::vector<float> work;  // penalised, scaled, filtered
    bool final_pick = false;  // the round-1 pick is the answer (no filter)
    bool full_row = false;    // top-p without top-k: filtered on the gathered row
  };
  std::vector<Row> rows;
  // Per sequence: why it could not be sampled (every rank decides the same from the same plan).
  std::vector<absl::Status> failed(req.sequences_size());
  // Candidates per row and rank: bounded by the rank's slice, whatever top_k asks for.
  int32_t max_n = 0, max_k = 0;
  bool any_min_p = false, any_full = false, any_late_pick = false;
  for (int i = 0; i < req.sequences_size(); ++i) {
    if (local.row_count[i] == 0) continue;
    const pb::SequenceStep& seq = req.sequences(i);
    absl::StatusOr<kc::SamplingParams> params = SequenceSamplingParams(seq, vocab);
    if (!params.ok()) {
      failed[i] = params.status();
      continue;
    }
    Row row;
    row.seq = i;
    row.params = *params;
    const float* src =
        local.logits.data<float>() + (local.row_begin[i] + local.row_count[i] - 1) * vl;
    row.raw.assign(src, src + vl);
    row.work = row.raw;
    const History& hist = history_[seq.slot()];
    kc::ApplyPenalties(row.work.data(), vl, vbegin, row.params, hist.prompt, hist.output);
    const kc::SamplingParams& p = row.params;
    const bool filters = p.top_k > 0 || p.top_p < 1.0f || p.min_p > 0.0f;
    row.final_pick = p.temperature == 0.0f || !filters;
    if (p.temperature > 0.0f) {
      for (float& v : row.work) v /= p.temperature;
      if (p.top_k > 0)
        max_k = std::max(max_k, static_cast<int32_t>(std::min<int64_t>(p.top_k, vl)));
      // Top-p needs the global order of what top-k kept (ties included): the filtered row.
      row.full_row = p.top_p < 1.0f;
    }
    any_full = any_full || row.full_row;
    any_min_p = any_min_p || (p.temperature > 0.0f && p.min_p > 0.0f);
    any_late_pick = any_late_pick || !row.final_pick;
    max_n = std::max(max_n, SequenceTopLogprobs(seq));
    rows.push_back(std::move(row));
  }
  const int64_t nrows = static_cast<int64_t>(rows.size());
  if (nrows == 0) {
    if (answers()) {
      for (int i = 0; i < req.sequences_size(); ++i) {
        pb::SequenceResult* out = response->add_results();
        out->set_request_tag(req.sequences(i).request_tag());
        out->set_token_id(-1);
        if (!failed[i].ok()) FailSequence(failed[i], req.sequences(i).request_tag(), out);
      }
    }
    return absl::OkStatus();
  }
  // Round 1. Record per row: max, sum (doubles); pick (id, score); max_n + max_k candidates.
  struct Cand {
    int32_t token;
    float score;
    float raw;  // the raw logit (picks: for the log-probability of the sampled token)
  };
  const int64_t cands = max_n + max_k;
  const int64_t rec = 2 * sizeof(double) + sizeof(Cand) * (1 + cands);
  std::vector<char> mine(nrows * rec), all(static_cast<size_t>(tp) * nrows * rec);
  const auto cand_at = [&](char* base, int64_t row, int64_t c) {
    return reinterpret_cast<Cand*>(base + row * rec + 2 * sizeof(double)) + c;
  };
  for (int64_t r = 0; r < nrows; ++r) {
    Row& row = rows[r];
    float m = kNegInf;
    for (float v : row.raw) m = std::max(m, v);
    double sum = 0.0;
    for (float v : row.raw) sum += std::exp(static_cast<double>(v) - m);
    const double ms[2] = {static_cast<double>(m), sum};
    std::memcpy(mine.data() + r * rec, ms, sizeof(ms));
    kc::TokenScore pick;
    if (row.final_pick) {
      pick = row.params.temperature == 0.0f
                 ? kc::Argmax(row.work.data(), vl, vbegin)
                 : kc::GumbelMax(row.work.data(), vl, vbegin, row.params.seed, row.params.position);
    }
    *cand_at(mine.data(), r, 0) = {pick.token, pick.score,
                                   pick.token >= 0 ? row.raw[pick.token - vbegin] : 0.0f};
    for (int64_t c = 0; c < cands; ++c) *cand_at(mine.data(), r, 1 + c) = {-1, kNegInf, 0.0f};
    const auto top_n = kc::TopN(row.raw.data(), vl, vbegin, max_n);
    for (size_t c = 0; c < top_n.size(); ++c) {
      *cand_at(mine.data(), r, 1 + c) = {top_n[c].token, top_n[c].score, top_n[c].score};
    }
    if (row.params.temperature > 0.0f && row.params.top_k > 0) {
      const auto top_k =
          kc::TopN(row.work.data(), vl, vbegin, std::min<int64_t>(row.params.top_k, vl));
      for (size_t c = 0; c < top_k.size(); ++c) {
        *cand_at(mine.data(), r, 1 + max_n + c) = {top_k[c].token, top_k[c].score, 0.0f};
      }
    }
  }
  RETURN_IF_ERROR(tp_comm_->AllGather(mine.data(), mine.size(), all.data()));
  // Rank k's records start at k * nrows * rec; cand_at(rank_rec(k, r), r, c) addresses row r.
  const auto rank_rec = [&](int rank, int64_t) { return all.data() + (rank * nrows) * rec; };
  std::vector<double> norm(nrows);  // log of the softmax normaliser of the raw row
  for (int64_t r = 0; r < nrows; ++r) {
    double big = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < tp; ++k) {
      double ms[2];
      std::memcpy(ms, rank_rec(k, r) + r * rec, sizeof(ms));
      big = std::max(big, ms[0]);
    }
    double total = 0.0;
    for (int k = 0; k < tp; ++k) {
      double ms[2];
      std::memcpy(ms, rank_rec(k, r) + r * rec, sizeof(ms));
      total += ms[1] * std::exp(ms[0] - big);
    }
    norm[r] = big + std::log(total);
  }
  // Filters. Top-k: the union of every rank's local top-k holds the global top-k.
  std::vector<int64_t> full_rows;
  for (int64_t r = 0; r < nrows; ++r) {
    Row& row = rows[r];
    const kc::SamplingParams& p = row.params;
    if (p.temperature == 0.0f || row.final_pick) continue;
    if (p.top_k > 0) {
      std::vector<kc::TokenScore> survivors;
      const int64_t local_k = std::min<int64_t>(p.top_k, vl);  // each rank sent at most vl
      for (int k = 0; k < tp; ++k) {
        for (int64_t c = 0; c < local_k; ++c) {
          const Cand cd = *cand_at(rank_rec(k, r), r, 1 + max_n + c);
          if (cd.token >= 0 && cd.score != kNegInf) survivors.push_back({cd.token, cd.score});
        }
      }
      std::vector<float> values;
      for (const auto& t : survivors) values.push_back(t.score);
      const double threshold = kc::TopKThreshold(values, p.top_k);
      kc::MaskBelow(row.work.data(), vl, threshold);
    }
    if (row.full_row) {
      full_rows.push_back(r);
    }
  }
  // Round 2: top-p needs the whole (top-k-filtered) row.
  if (any_full) {
    const int64_t f = static_cast<int64_t>(full_rows.size());
    std::vector<float> slice(f * vl), gathered(static_cast<size_t>(tp) * f * vl);
    for (int64_t j = 0; j < f; ++j) {
      std::memcpy(&slice[j * vl], rows[full_rows[j]].work.data(), vl * sizeof(float));
    }
    RETURN_IF_ERROR(
        tp_comm_->AllGather(slice.data(), slice.size() * sizeof(float), gathered.data()));
    std::vector<float> row_full(vocab);
    for (int64_t j = 0; j < f; ++j) {
      for (int k = 0; k < tp; ++k) {
        std::memcpy(&row_full[k * vl], &gathered[(k * f + j) * vl], vl * sizeof(float));
      }
      Row& row = rows[full_rows[j]];
      kc::ApplyTopKTopPMinP(row_full.data(), vocab, 0, row.params.top_p, 0.0f);
      std::memcpy(row.work.data(), &row_full[vbegin], vl * sizeof(float));
    }
  }
  // Round 3: min-p from the global max of what the filters kept.
  if (any_min_p) {
    std::vector<float> maxes(nrows, kNegInf), all_max(static_cast<size_t>(tp) * nrows);
    for (int64_t r = 0; r < nrows; ++r) {
      for (float v : rows[r].work) maxes[r] = std::max(maxes[r], v);
    }
    RETURN_IF_ERROR(
        tp_comm_->AllGather(maxes.data(), maxes.size() * sizeof(float), all_max.data()));
    for (int64_t r = 0; r < nrows; ++r) {
      const kc::SamplingParams& p = rows[r].params;
      if (p.temperature == 0.0f || p.min_p <= 0.0f) continue;
      float m = kNegInf;
      for (int k = 0; k < tp; ++k) m = std::max(m, all_max[k * nrows + r]);
      kc::MaskBelow(rows[r].work.data(), vl, kc::MinPThreshold(m, p.min_p));
    }
  }
  // Picks: round 1's where final, else round 4. CombinePicks decides; the winner's raw logit
  // gives the log-probability.
  std::vector<kc::TokenScore> picks(nrows);
  std::vector<float> pick_raw(nrows, 0.0f);
  const auto combine = [&](int64_t r, const Cand& cd) {
    const kc::TokenScore better = kc::CombinePicks(picks[r], {cd.token, cd.score});
    if (better.token != picks[r].token) pick_raw[r] = cd.raw;
    picks[r] = better;
  };
  for (int64_t r = 0; r < nrows; ++r) {
    for (int k = 0; k < tp; ++k) combine(r, *cand_at(rank_rec(k, r), r, 0));
  }
  if (any_late_pick) {
    std::vector<Cand> late(nrows, Cand{-1, kNegInf, 0.0f});
    std::vector<Cand> all_late(static_cast<size_t>(tp) * nrows);
    for (int64_t r = 0; r < nrows; ++r) {
      if (rows[r].final_pick) continue;
      const kc::TokenScore t = kc::GumbelMax(rows[r].work.data(), vl, vbegin, rows[r].params.seed,
                                             rows[r].params.position);
      late[r] = {t.token, t.score, t.token >= 0 ? rows[r].raw[t.token - vbegin] : 0.0f};
    }
    RETURN_IF_ERROR(tp_comm_->AllGather(late.data(), late.size() * sizeof(Cand), all_late.data()));
    for (int64_t r = 0; r < nrows; ++r) {
      if (rows[r].final_pick) continue;
      picks[r] = kc::TokenScore{};
      for (int k = 0; k < tp; ++k) combine(r, all_late[k * nrows + r]);
    }
  }
  if (!answers()) return absl::OkStatus();
  std::vector<int64_t> row_of(req.sequences_size(), -1);
  for (int64_t r = 0; r < nrows; ++r) row_of[rows[r].seq] = r;
  for (int i = 0; i < req.sequences_size(); ++i) {
    const pb::SequenceStep& seq = req.sequences(i);
    pb::SequenceResult* out = response->add_results();
    out->set_request_tag(seq.request_tag());
    out->set_token_id(-1);
    if (!failed[i].ok()) {
      FailSequence(failed[i], seq.request_tag(), out);
      continue;
    }
    const int64_t r = row_of[i];
    if (r < 0) continue;
    if (picks[r].token < 0 || picks[r].token >= vocab) {
      FailSequence(NoCandidate(), seq.request_tag(), out);
      continue;
    }
    out->set_token_id(picks[r].token);
    out->set_logprob(static_cast<float>(pick_raw[r] - norm[r]));
    // Top-N log-probabilities: the global top N is within the union of the ranks' top N.
    const int n = SequenceTopLogprobs(seq);
    if (n == 0) continue;
    std::vector<kc::TokenScore> union_n;
    for (int k = 0; k < tp; ++k) {
      for (int64_t c = 0; c < max_n; ++c) {
        const Cand cd = *cand_at(rank_rec(k, r), r, 1 + c);
        if (cd.token >= 0) union_n.push_back({cd.token, cd.score});
      }
    }
    std::sort(union_n.begin(), union_n.end(), [](const kc::TokenScore& a, const kc::TokenScore& b) {
      return a.score != b.score ? a.score > b.score : a.token < b.token;
    });
    for (int64_t c = 0; c < std::min<int64_t>(n, static_cast<int64_t>(union_n.size())); ++c) {
      pb::TokenLogprob* lp = out->add_top_logprobs();
      lp->set_token_id(union_n[c].token);
      lp->set_logprob(static_cast<float>(union_n[c].score - norm[r]));
    }
  }
  return absl::OkStatus();
}
}  // namespace tandem::worker
