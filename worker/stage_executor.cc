#include "worker/stage_executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "comm/tcp_rendezvous.h"
#include "core/status.h"
#include "kernels/cpu/sampling.h"
#include "model/batch_metadata.h"
#include "sharding/layer_partition.h"

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
  absl::Status AllReduceSum(float* data, size_t n) override { return comm_->AllReduceSum(data, n); }

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
  model_.reset();
  pipeline_.reset();
  tp_comm_.reset();
}

absl::StatusOr<std::unique_ptr<StageExecutor>> StageExecutor::Create(const pb::LoadRequest& req) {
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
  model::StateCapacity cap;
  cap.num_slots = ex->capacity_.num_slots();
  cap.num_blocks = ex->model_->has_attention() ? ex->capacity_.num_blocks() : 0;
  cap.block_size = ex->capacity_.block_size();
  ex->model_->AllocateState(cap);
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
  info->set_checkpoint_bytes_read(static_cast<int64_t>(model_->checkpoint_bytes_read()));
}

void StageExecutor::Release(const std::vector<int32_t>& slots) {
  for (int32_t s : slots) history_.erase(s);
}

absl::StatusOr<pb::StepResponse> StageExecutor::Execute(const pb::StepRequest& req) {
  if (!broken_.ok()) return broken_;
  const auto start = std::chrono::steady_clock::now();
  model::StepPlan plan;
  for (const pb::SequenceStep& s : req.sequences()) {
    model::SequenceStep m;
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
  if (s.first_stage) {
    st = model_->Embed(meta, hidden.data());
  } else {
    auto got = pipeline_->Recv(rank_ - tp, tag, hidden.data(), bytes, timeout_);
    if (got.ok() && *got != bytes) {
      st = absl::InternalError(absl::StrCat("received ", *got, " bytes of hidden states from rank ",
                                            rank_ - tp, ", expected ", bytes));
    } else {
      st = got.status();
    }
  }
  if (st.ok()) st = model_->RunLayers(meta, hidden.data());
  if (st.ok() && !s.last_stage) st = pipeline_->Send(rank_ + tp, tag, hidden.data(), bytes);
  pb::StepResponse response;
  response.set_step_id(req.step_id());
  if (st.ok() && s.last_stage) {
    auto local = model_->Head(plan, hidden.data());
    st = local.status();
    if (st.ok()) st = Sample(req, *local, &response);
  }
  if (!st.ok()) {
    broken_ = Broken(rank_, st);
    return broken_;
  }
  response.set_compute_us(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count());
  return response;
}

absl::Status StageExecutor::Sample(const pb::StepRequest& req, const model::StepLogits& local,
                                   pb::StepResponse* response) {
  const int tp = plan_.parallel().tp;
  const int64_t rows = local.logits.dim(0);
  const int64_t vl = local.logits.dim(1);
  const int64_t vocab = vl * tp;
  // The requested rows of every rank's vocabulary slice, gathered (TP rank 0 keeps them).
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
    // Sampling history of the slot (tokens fed so far, split at prompt_len).
    History& hist = history_[seq.slot()];
    if (seq.start_pos() == 0) hist = History{};
    for (int j = 0; j < seq.token_ids_size(); ++j) {
      (seq.start_pos() + j < seq.prompt_len() ? hist.prompt : hist.output)
          .push_back(seq.token_ids(j));
    }
    pb::SequenceResult* out = response->add_results();
    out->set_request_tag(seq.request_tag());
    out->set_token_id(-1);
    const int64_t count = local.row_count[i];
    if (count == 0) continue;
    const float* row0 = &full[local.row_begin[i] * vocab];
    if (seq.logits() == pb::LOGITS_ALL) {
      out->set_all_logits(row0, count * vocab * sizeof(float));
    }
    std::vector<float> last(row0 + (count - 1) * vocab, row0 + count * vocab);
    std::vector<float> logprobs(vocab);
    kernels::cpu::LogSoftmax(last.data(), logprobs.data(), vocab);
    const pb::SamplingParams& sp = seq.sampling();
    kernels::cpu::SamplingParams p;
    p.temperature = sp.temperature();
    p.top_k = sp.top_k();
    p.top_p = sp.top_p() > 0 ? sp.top_p() : 1.0f;
    p.min_p = sp.min_p();
    p.repetition_penalty = sp.repetition_penalty() > 0 ? sp.repetition_penalty() : 1.0f;
    p.presence_penalty = sp.presence_penalty();
    p.frequency_penalty = sp.frequency_penalty();
    p.seed = sp.seed();
    p.position = seq.start_pos() + seq.token_ids_size();
    const int32_t token = kernels::cpu::Sample(last.data(), vocab, p, hist.prompt, hist.output);
    out->set_token_id(token);
    out->set_logprob(token >= 0 ? logprobs[token] : 0.0f);
    const int n = std::clamp(seq.top_logprobs(), 0, 20);
    for (const kernels::cpu::TokenScore& t : kernels::cpu::TopN(logprobs.data(), vocab, 0, n)) {
      pb::TokenLogprob* lp = out->add_top_logprobs();
      lp->set_token_id(t.token);
      lp->set_logprob(t.score);
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::worker
