// StageExecutor: one worker's part of a replica's forward step (DESIGN.md §2).
//
// It owns this rank's model shard (its stage's layers, its TP slice, loaded by slice from the
// memory-mapped checkpoint), the TP communicator of its stage (Gloo or UCX; one all-reduce per
// layer and one for the vocab-parallel embedding) and the pipeline transport (UCX) to the
// neighbouring stages. Execute runs one step plan:
//   stage 0 embeds (vocab-parallel + all-reduce), other stages receive the hidden states [T, H]
//   from the same TP rank of the previous stage; run the stage's layers; send [T, H] to the next
//   stage; the last stage computes its vocabulary rows of the logits for the positions that asked
//   for them, all-gathers those rows (only they cross the network) to TP rank 0, which samples
//   and answers.
// Every worker of the replica must execute the same plans in the same order. After a
// communication error the executor is broken (UNAVAILABLE for every later step).
// Not thread-safe: the caller serialises calls.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "comm/transport.h"
#include "model/nemotron_h_model.h"
#include "sharding/shard_plan.h"
#include "tandem/worker/v1/worker.pb.h"

namespace tandem::worker {

namespace pb = ::tandem::worker::v1;

class StageExecutor {
 public:
  // Joins the TP group and the pipeline (rendezvous through request.rendezvous()), loads this
  // rank's weight slice and allocates its state pools.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StageExecutor>> Create(
      const pb::LoadRequest& request);
  ~StageExecutor();
  // Closes the TP communicator and the pipeline transport (Communicator::Abort, Transport::Abort),
  // so peers waiting on this rank fail now. Thread-safe: a step stuck on another thread waiting
  // for a dead peer's pipeline transfer fails promptly (a collective in progress is left to fail
  // on its own). The executor is unusable afterwards.
  void AbortCommunication(const absl::Status& reason);

  [[nodiscard]] absl::StatusOr<pb::StepResponse> Execute(const pb::StepRequest& request);
  void Release(const std::vector<int32_t>& slots);

  // Info fields (layout, capacity, capabilities, byte counts).
  void FillInfo(pb::InfoResponse* info) const;
  const sharding::RankShard& shard() const { return plan_.rank(rank_); }

 private:
  StageExecutor(sharding::ShardPlan plan, int rank);
  bool answers() const;  // TP rank 0 of the last stage
  absl::Status SampleGathered(const pb::StepRequest& request, const model::StepLogits& local,
                              pb::StepResponse* response);
  absl::Status SampleSharded(const pb::StepRequest& request, const model::StepLogits& local,
                             pb::StepResponse* response);
  absl::Status Sample(const pb::StepRequest& request, const model::StepLogits& local,
                      pb::StepResponse* response);

  class Reducer;
  sharding::ShardPlan plan_;
  int rank_ = 0;
  std::string model_dir_;
  std::string collective_;
  std::unique_ptr<comm::Communicator> tp_comm_;
  std::unique_ptr<Reducer> reducer_;
  std::unique_ptr<comm::Transport> pipeline_;
  absl::Duration timeout_;
  std::unique_ptr<model::NemotronHModel> model_;
  pb::Capacity capacity_;
  absl::Status broken_;
  struct History {
    std::vector<int32_t> prompt, output;
  };
  std::map<int32_t, History> history_;  // per slot, last stage only (sampling penalties)
  // Per prefix-cache snapshot: the history of the slot it was saved from (last stage only).
  std::vector<History> snapshot_history_;
};

}  // namespace tandem::worker
