// comm_bench: Gloo and UCX all-reduce and UCX send/recv on loopback between two real processes, for
// the message sizes a step uses: [T, H] floats, T tokens in {1, 16, 256}, hidden size H in {64,
// 1024, 4096}.
//
// The process run by the user is rank 0: it serves the rendezvous, starts rank 1 (itself with
// --peer), and drives Google Benchmark. Before each benchmark run it tells rank 1 what to do
// (operation, bytes, iterations) over the connection being measured, outside the timed loop.
//
//   comm_bench --benchmark_out=bench/results/comm_loopback.json --benchmark_out_format=json
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "bench/bench_context.h"
#include "benchmark/benchmark.h"
#include "comm/gloo_communicator.h"
#include "comm/tcp_rendezvous.h"
#include "comm/ucx_communicator.h"
#include "comm/ucx_transport.h"

namespace tandem::comm {
namespace {

enum Op : int64_t { kQuit = 0, kAllReduce = 1, kPingPong = 2, kStream = 3, kUcxAllReduce = 4 };
constexpr uint64_t kControlTag = 1;
constexpr uint64_t kDataTag = 2;

struct Command {
  int64_t op = kQuit;
  int64_t bytes = 0;
  int64_t iterations = 0;
};

GlooCommunicator* g_gloo = nullptr;
UcxCommunicator* g_ucx_comm = nullptr;
UcxTransport* g_ucx = nullptr;

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::cerr << "comm_bench: " << s << std::endl;
    std::exit(1);
  }
}

// Rank 1: follows rank 0's commands until kQuit.
void PeerLoop() {
  std::vector<char> buf(256 * 4096 * sizeof(float) + 64);
  for (;;) {
    Command cmd;
    absl::StatusOr<size_t> n = g_ucx->Recv(0, kControlTag, &cmd, sizeof(cmd), absl::Hours(1));
    Check(n.status());
    if (cmd.op == kQuit) return;
    for (int64_t i = 0; i < cmd.iterations; ++i) {
      if (cmd.op == kAllReduce) {
        Check(g_gloo->AllReduceSum(reinterpret_cast<float*>(buf.data()), cmd.bytes / 4));
      } else if (cmd.op == kUcxAllReduce) {
        Check(g_ucx_comm->AllReduceSum(reinterpret_cast<float*>(buf.data()), cmd.bytes / 4));
      } else if (cmd.op == kPingPong) {
        Check(g_ucx->Recv(0, kDataTag, buf.data(), buf.size()).status());
        Check(g_ucx->Send(0, kDataTag, buf.data(), cmd.bytes));
      } else {
        Check(g_ucx->Recv(0, kDataTag, buf.data(), buf.size()).status());
      }
    }
    if (cmd.op == kStream) Check(g_ucx->Send(0, kDataTag, buf.data(), 1));
  }
}

void SendCommand(Op op, int64_t bytes, int64_t iterations) {
  Command cmd{op, bytes, iterations};
  Check(g_ucx->Send(1, kControlTag, &cmd, sizeof(cmd)));
}

int64_t Bytes(const benchmark::State& state) { return state.range(0) * state.range(1) * 4; }

void SetCounters(benchmark::State& state, int64_t bytes_per_iteration) {
  state.SetBytesProcessed(state.iterations() * bytes_per_iteration);
  state.counters["bytes"] = static_cast<double>(Bytes(state));
}

void BM_GlooAllReduce(benchmark::State& state) {
  const int64_t bytes = Bytes(state);
  std::vector<float> data(bytes / 4, 1.0f);
  SendCommand(kAllReduce, bytes, state.max_iterations);
  for (auto _ : state) Check(g_gloo->AllReduceSum(data.data(), data.size()));
  SetCounters(state, bytes);
}

void BM_UcxAllReduce(benchmark::State& state) {
  const int64_t bytes = Bytes(state);
  std::vector<float> data(bytes / 4, 1.0f);
  SendCommand(kUcxAllReduce, bytes, state.max_iterations);
  for (auto _ : state) Check(g_ucx_comm->AllReduceSum(data.data(), data.size()));
  SetCounters(state, bytes);
}

// Round trip of one [T, H] message there and back; time per iteration is the round trip.
void BM_UcxPingPong(benchmark::State& state) {
  const int64_t bytes = Bytes(state);
  std::vector<char> buf(bytes + 64);
  SendCommand(kPingPong, bytes, state.max_iterations);
  for (auto _ : state) {
    Check(g_ucx->Send(1, kDataTag, buf.data(), bytes));
    Check(g_ucx->Recv(1, kDataTag, buf.data(), buf.size()).status());
  }
  SetCounters(state, 2 * bytes);
}

// One-way stream of [T, H] messages (bandwidth); the peer acknowledges the last one.
void BM_UcxStream(benchmark::State& state) {
  const int64_t bytes = Bytes(state);
  std::vector<char> buf(bytes + 64);
  SendCommand(kStream, bytes, state.max_iterations);
  for (auto _ : state) Check(g_ucx->Send(1, kDataTag, buf.data(), bytes));
  Check(g_ucx->Recv(1, kDataTag, buf.data(), buf.size()).status());
  SetCounters(state, bytes);
}

void StepSizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"T", "H"});
  for (int64_t t : {1, 16, 256}) {
    for (int64_t h : {64, 1024, 4096}) b->Args({t, h});
  }
  b->MinTime(0.2)->UseRealTime();
}

BENCHMARK(BM_GlooAllReduce)->Apply(StepSizes);
BENCHMARK(BM_UcxAllReduce)->Apply(StepSizes);
BENCHMARK(BM_UcxPingPong)->Apply(StepSizes);
BENCHMARK(BM_UcxStream)->Apply(StepSizes);

void Connect(int rank, RendezvousStore* store, std::unique_ptr<GlooCommunicator>* gloo,
             std::unique_ptr<UcxTransport>* ucx, std::unique_ptr<UcxCommunicator>* ucx_comm) {
  GlooOptions gloo_options;
  gloo_options.rank = rank;
  gloo_options.size = 2;
  gloo_options.store = store;
  gloo_options.timeout = absl::Seconds(60);
  auto g = GlooCommunicator::Create(gloo_options);
  Check(g.status());
  UcxOptions ucx_options;
  ucx_options.rank = rank;
  ucx_options.size = 2;
  ucx_options.store = store;
  ucx_options.timeout = absl::Seconds(60);
  auto u = UcxTransport::Create(ucx_options);
  Check(u.status());
  ucx_options.prefix = "ucx_coll";
  auto uc = UcxCommunicator::Create(ucx_options);
  Check(uc.status());
  *ucx_comm = std::move(*uc);
  g_ucx_comm = ucx_comm->get();
  *gloo = std::move(*g);
  *ucx = std::move(*u);
  g_gloo = gloo->get();
  g_ucx = ucx->get();
}

}  // namespace
}  // namespace tandem::comm

int main(int argc, char** argv) {
  using namespace tandem::comm;  // NOLINT
  std::unique_ptr<GlooCommunicator> gloo;
  std::unique_ptr<UcxTransport> ucx;
  std::unique_ptr<UcxCommunicator> ucx_comm;
  if (argc == 3 && std::strcmp(argv[1], "--peer") == 0) {
    alarm(3600);
    TcpStoreClient store(argv[2]);
    Connect(1, &store, &gloo, &ucx, &ucx_comm);
    PeerLoop();
    return 0;
  }
  auto server = RendezvousServer::Start("127.0.0.1", 0);
  Check(server.status());
  const pid_t peer = fork();
  if (peer == 0) {
    setpgid(0, 0);
    const std::string address = (*server)->address();
    execl("/proc/self/exe", argv[0], "--peer", address.c_str(), nullptr);
    _exit(127);
  }
  TcpStoreClient store((*server)->address());
  Connect(0, &store, &gloo, &ucx, &ucx_comm);
  tandem::bench::AddMachineContext();
  benchmark::AddCustomContext("topology", "2 processes on one machine, loopback");
  std::string lanes = ucx->DescribePeer(1);
  for (char& c : lanes) {
    if (c == '\n') c = ';';
  }
  benchmark::AddCustomContext("ucx_endpoint", lanes);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  SendCommand(kQuit, 0, 0);
  ucx_comm.reset();
  ucx.reset();
  gloo.reset();
  int status = 0;
  waitpid(peer, &status, 0);
  return 0;
}
