// comm_test_peer: one rank of a multi-process comm test, started by comm_test.
//
//   comm_test_peer <mode> <rank> <size> <store host:port> <seed>
//
// Exit status 0 when every check passed; results that the parent asserts on (status codes,
// elapsed times) go to the rendezvous store under "result/<rank>". A watchdog alarm ends the
// process after 60 s whatever happens, so a broken test cannot leave it behind for long.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "comm/tcp_rendezvous.h"
#include "tests/comm/peer_data.h"
#ifdef TANDEM_TEST_GLOO
#include "comm/gloo_communicator.h"
#endif
#ifdef TANDEM_TEST_UCX
#include "comm/ucx_communicator.h"
#include "comm/ucx_transport.h"
#endif
#ifdef TANDEM_TEST_NCCL
#include <cuda_runtime_api.h>

#include "comm/nccl_communicator.h"
#endif

namespace tandem::comm::testing {
namespace {

struct Args {
  int rank = 0;
  int size = 0;
  uint64_t seed = 0;
  TcpStoreClient* store = nullptr;
};

#define PEER_CHECK(cond, msg)                                                                 \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::cerr << "rank " << args.rank << ": check failed: " #cond ": " << msg << std::endl; \
      return 1;                                                                               \
    }                                                                                         \
  } while (false)

[[maybe_unused]] int ReportResult(const Args& args, const absl::Status& status,
                                  absl::Duration elapsed) {
  const std::string result =
      absl::StrCat(static_cast<int>(status.code()), " ", absl::ToInt64Milliseconds(elapsed));
  std::cerr << "rank " << args.rank << ": result " << status << " after " << elapsed << std::endl;
  return args.store->Set(absl::StrCat("result/", args.rank), result).ok() ? 0 : 1;
}

// Every collective against its reference, on any Communicator.
[[maybe_unused]] int CheckCollectives(const Args& args, Communicator& c) {
  uint64_t case_id = 0;
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}, size_t{300000}}) {
    ++case_id;
    std::vector<float> data = RankFloats(args.seed, args.rank, n, case_id);
    std::vector<float> expected(n, 0.0f);
    for (int r = 0; r < args.size; ++r) {
      std::vector<float> other = RankFloats(args.seed, r, n, case_id);
      for (size_t i = 0; i < n; ++i) expected[i] += other[i];
    }
    absl::Status s = c.AllReduceSum(data.data(), n);
    PEER_CHECK(s.ok(), s);
    for (size_t i = 0; i < n; ++i) {
      PEER_CHECK(data[i] == expected[i],
                 "all-reduce n=" << n << " [" << i << "] " << data[i] << " != " << expected[i]);
    }
  }
  for (size_t bytes : {size_t{1}, size_t{13}, size_t{4096}, size_t{1 << 20}}) {
    ++case_id;
    const std::string mine = RankBytes(args.seed, args.rank, bytes, case_id);
    std::string out(bytes * args.size, '\xAB');
    absl::Status s = c.AllGather(mine.data(), bytes, out.data());
    PEER_CHECK(s.ok(), s);
    for (int r = 0; r < args.size; ++r) {
      PEER_CHECK(out.compare(r * bytes, bytes, RankBytes(args.seed, r, bytes, case_id)) == 0,
                 "all-gather of " << bytes << " bytes: block of rank " << r << " differs");
    }
  }
  for (int root = 0; root < args.size; ++root) {
    for (size_t bytes : {size_t{5}, size_t{65536}}) {
      ++case_id;
      std::string data = args.rank == root ? RankBytes(args.seed, root, bytes, case_id)
                                           : std::string(bytes, '\xCD');
      absl::Status s = c.Broadcast(data.data(), bytes, root);
      PEER_CHECK(s.ok(), s);
      PEER_CHECK(data == RankBytes(args.seed, root, bytes, case_id),
                 "broadcast of " << bytes << " bytes from root " << root << " differs");
    }
  }
  absl::Status bad_root = c.Broadcast(nullptr, 4, args.size);
  PEER_CHECK(bad_root.code() == absl::StatusCode::kInvalidArgument, bad_root);
  // Barrier: nobody passes before the last rank has published its key.
  PEER_CHECK(args.store->Set(absl::StrCat("before_barrier/", args.rank), "x").ok(), "set");
  if (args.rank == args.size - 1) absl::SleepFor(absl::Milliseconds(300));
  absl::Status s = c.Barrier();
  PEER_CHECK(s.ok(), s);
  for (int r = 0; r < args.size; ++r) {
    auto v = args.store->Get(absl::StrCat("before_barrier/", r), absl::ZeroDuration());
    PEER_CHECK(v.ok(), "rank " << r << " had not reached the barrier: " << v.status());
  }
  return 0;
}

// The last rank is the victim: it parks after the barrier and is killed by the parent; the
// others are inside an all-reduce by then and must fail within the deadline.
[[maybe_unused]] int KillDuringAllReduce(const Args& args,
                                         absl::StatusOr<std::unique_ptr<Communicator>> comm) {
  PEER_CHECK(comm.ok(), comm.status());
  absl::Status s = (*comm)->Barrier();
  PEER_CHECK(s.ok(), s);
  PEER_CHECK(args.store->Set(absl::StrCat("ready/", args.rank), "x").ok(), "set");
  if (args.rank == args.size - 1) {
    pause();
    return 0;
  }
  std::vector<float> data = RankFloats(args.seed, args.rank, 1 << 20, 1);
  const absl::Time start = absl::Now();
  s = (*comm)->AllReduceSum(data.data(), data.size());
  const absl::Duration elapsed = absl::Now() - start;
  absl::Status after = (*comm)->Barrier();
  PEER_CHECK(after.code() == absl::StatusCode::kFailedPrecondition, after);
  return ReportResult(args, s, elapsed);
}

#ifdef TANDEM_TEST_GLOO
absl::StatusOr<std::unique_ptr<Communicator>> MakeGloo(const Args& args, absl::Duration timeout) {
  GlooOptions options;
  options.rank = args.rank;
  options.size = args.size;
  options.store = args.store;
  options.prefix = "gloo";
  options.timeout = timeout;
  return GlooCommunicator::Create(options);
}

int GlooCollectives(const Args& args) {
  auto comm = MakeGloo(args, absl::Seconds(20));
  PEER_CHECK(comm.ok(), comm.status());
  return CheckCollectives(args, **comm);
}

int GlooKill(const Args& args) {
  return KillDuringAllReduce(args, MakeGloo(args, absl::Seconds(8)));
}

// The last rank stays alive but never joins the all-reduce: the others must give up at their
// deadline (2 s) instead of waiting forever.
int GlooStuck(const Args& args) {
  auto comm = MakeGloo(args, absl::Seconds(2));
  PEER_CHECK(comm.ok(), comm.status());
  absl::Status s = (*comm)->Barrier();
  PEER_CHECK(s.ok(), s);
  if (args.rank == args.size - 1) {
    pause();
    return 0;
  }
  std::vector<float> data = RankFloats(args.seed, args.rank, 1000, 1);
  const absl::Time start = absl::Now();
  s = (*comm)->AllReduceSum(data.data(), data.size());
  return ReportResult(args, s, absl::Now() - start);
}
// The last rank's step failed elsewhere: it calls Abort instead of joining the all-reduce. The
// others must fail UNAVAILABLE at once (its connections close), far before their 20 s deadline.
int GlooAbort(const Args& args) {
  auto comm = MakeGloo(args, absl::Seconds(20));
  PEER_CHECK(comm.ok(), comm.status());
  absl::Status s = (*comm)->Barrier();
  PEER_CHECK(s.ok(), s);
  if (args.rank == args.size - 1) {
    absl::SleepFor(absl::Milliseconds(300));  // the others are inside the all-reduce
    (*comm)->Abort(absl::UnavailableError("the step failed elsewhere"));
    absl::Status after = (*comm)->Barrier();
    PEER_CHECK(after.code() == absl::StatusCode::kFailedPrecondition, after);
    PEER_CHECK(absl::StrContains(after.message(), "the step failed elsewhere"), after);
    pause();
    return 0;
  }
  std::vector<float> data = RankFloats(args.seed, args.rank, 1000, 1);
  const absl::Time start = absl::Now();
  s = (*comm)->AllReduceSum(data.data(), data.size());
  return ReportResult(args, s, absl::Now() - start);
}
#endif  // TANDEM_TEST_GLOO

#ifdef TANDEM_TEST_UCX
bool g_ucx_shared_memory = true;  // false for modes with the suffix "_tcp"

absl::StatusOr<std::unique_ptr<UcxTransport>> MakeUcx(const Args& args) {
  UcxOptions options;
  options.rank = args.rank;
  options.size = args.size;
  options.store = args.store;
  options.prefix = "ucx";
  options.timeout = absl::Seconds(8);
  options.shared_memory = g_ucx_shared_memory;
  return UcxTransport::Create(options);
}

int UcxSendRecv(const Args& args) {
  auto t = MakeUcx(args);
  PEER_CHECK(t.ok(), t.status());
  const int peer = 1 - args.rank;
  uint64_t case_id = 0;
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{4096}, size_t{1} << 20, size_t{16} << 20}) {
    ++case_id;
    // Both directions at once on distinct tags: rank 0 sends first, rank 1 receives first.
    const std::string mine = RankBytes(args.seed, args.rank, bytes, case_id);
    const std::string theirs = RankBytes(args.seed, peer, bytes, case_id);
    std::string got(bytes + 16, '\xEE');
    for (int step = 0; step < 2; ++step) {
      if ((step == 0) == (args.rank == 0)) {
        absl::Status s = (*t)->Send(peer, case_id, mine.data(), bytes);
        PEER_CHECK(s.ok(), s);
      } else {
        absl::StatusOr<size_t> n = (*t)->Recv(peer, case_id, got.data(), got.size());
        PEER_CHECK(n.ok(), n.status());
        PEER_CHECK(*n == bytes, "received " << *n << " bytes, expected " << bytes);
        PEER_CHECK(got.compare(0, bytes, theirs) == 0, bytes << " bytes: data differs");
      }
    }
  }
  // A message larger than the receive buffer is an error, not an overflow.
  ++case_id;
  if (args.rank == 0) {
    const std::string big(100, 'x');
    absl::Status s = (*t)->Send(peer, case_id, big.data(), big.size());
    PEER_CHECK(s.ok(), s);
  } else {
    std::string small(10, '\0');
    absl::StatusOr<size_t> n = (*t)->Recv(peer, case_id, small.data(), small.size());
    PEER_CHECK(!n.ok(), "truncated receive succeeded");
  }
  // A receive with nothing coming ends at its deadline.
  if (args.rank == 0) {
    char c = 0;
    const absl::Time start = absl::Now();
    absl::StatusOr<size_t> n = (*t)->Recv(peer, 9999, &c, 1, absl::Milliseconds(200));
    PEER_CHECK(n.status().code() == absl::StatusCode::kDeadlineExceeded, n.status());
    PEER_CHECK(absl::Now() - start < absl::Seconds(5), "deadline overshot");
  }
  // Rank 1 waits for rank 0's last message, which the closing endpoint must still deliver.
  ++case_id;
  char token = 't';
  if (args.rank == 1) {
    absl::StatusOr<size_t> n = (*t)->Recv(peer, case_id, &token, 1);
    PEER_CHECK(n.ok(), n.status());
  } else {
    absl::Status s = (*t)->Send(peer, case_id, &token, 1);
    PEER_CHECK(s.ok(), s);
  }
  return 0;
}

// Rank 0 waits in a Recv from rank 1, which never sends (it is alive: no disconnect to see);
// another thread of rank 0 calls Abort, as a worker does when a new group forms. The Recv must
// fail at once, far before its 30 s timeout.
int UcxAbortInterrupt(const Args& args) {
  auto t = MakeUcx(args);
  PEER_CHECK(t.ok(), t.status());
  if (args.rank == 1) {
    PEER_CHECK(args.store->Set("ready/1", "x").ok(), "set");
    pause();
    return 0;
  }
  std::thread aborter([&] {
    absl::SleepFor(absl::Milliseconds(300));
    (*t)->Abort(absl::UnavailableError("a new group is forming"));
  });
  std::string buf(1 << 16, '\0');
  const absl::Time start = absl::Now();
  absl::StatusOr<size_t> r = (*t)->Recv(1, 7, buf.data(), buf.size(), absl::Seconds(30));
  const absl::Duration elapsed = absl::Now() - start;
  aborter.join();
  PEER_CHECK(!r.ok(), "the receive succeeded");
  PEER_CHECK(absl::StrContains(r.status().message(), "a new group is forming"), r.status());
  return ReportResult(args, r.status(), elapsed);
}

// Rank 1 is the victim; rank 0 waits in Recv when the parent kills it.
int UcxKill(const Args& args) {
  auto t = MakeUcx(args);
  PEER_CHECK(t.ok(), t.status());
  char c = 0;
  if (args.rank == 1) {
    absl::Status s = (*t)->Send(0, 1, &c, 1);
    PEER_CHECK(s.ok(), s);
    PEER_CHECK(args.store->Set("ready/1", "x").ok(), "set");
    pause();
    return 0;
  }
  absl::StatusOr<size_t> n = (*t)->Recv(1, 1, &c, 1);
  PEER_CHECK(n.ok(), n.status());
  PEER_CHECK(args.store->Set("ready/0", "x").ok(), "set");
  std::string buf(1 << 20, '\0');
  const absl::Time start = absl::Now();
  absl::StatusOr<size_t> r = (*t)->Recv(1, 2, buf.data(), buf.size(), absl::Seconds(30));
  const absl::Duration elapsed = absl::Now() - start;
  PEER_CHECK(!r.ok(), "receive from a dead peer succeeded");
  // Later operations with the dead peer fail at once.
  absl::Status later = (*t)->Send(1, 3, buf.data(), 16);
  PEER_CHECK(later.code() == absl::StatusCode::kUnavailable, later);
  return ReportResult(args, r.status(), elapsed);
}

absl::StatusOr<std::unique_ptr<Communicator>> MakeUcxCommunicator(const Args& args,
                                                                  absl::Duration timeout) {
  UcxOptions options;
  options.rank = args.rank;
  options.size = args.size;
  options.store = args.store;
  options.prefix = "ucx_coll";
  options.timeout = timeout;
  options.shared_memory = g_ucx_shared_memory;
  return UcxCommunicator::Create(options);
}

int UcxCollectives(const Args& args) {
  auto comm = MakeUcxCommunicator(args, absl::Seconds(20));
  PEER_CHECK(comm.ok(), comm.status());
  return CheckCollectives(args, **comm);
}

int UcxCollectivesKill(const Args& args) {
  return KillDuringAllReduce(args, MakeUcxCommunicator(args, absl::Seconds(3)));
}

// Three ranks: rank 0 sends 16 MiB to rank 1, which never receives (the send times out and
// closes that endpoint), then to rank 2, which the parent kills mid-send.
int UcxSendFailures(const Args& args) {
  auto t = MakeUcx(args);
  PEER_CHECK(t.ok(), t.status());
  if (args.rank != 0) {
    PEER_CHECK(args.store->Set(absl::StrCat("ready/", args.rank), "x").ok(), "set");
    pause();
    return 0;
  }
  const std::string big = RankBytes(args.seed, 0, 16 << 20, 1);
  absl::Status s = (*t)->Send(1, 1, big.data(), big.size(), absl::Milliseconds(300));
  PEER_CHECK(s.code() == absl::StatusCode::kDeadlineExceeded, s);
  s = (*t)->Send(1, 2, big.data(), 1);
  PEER_CHECK(s.code() == absl::StatusCode::kUnavailable, s);
  PEER_CHECK(args.store->Set("ready/0", "x").ok(), "set");
  const absl::Time start = absl::Now();
  s = (*t)->Send(2, 1, big.data(), big.size(), absl::Seconds(30));
  return ReportResult(args, s, absl::Now() - start);
}
#endif

#ifdef TANDEM_TEST_NCCL
// Two ranks on device 0. NCCL may refuse two ranks on one GPU ("duplicate GPU"): then both
// report that error; otherwise they check an all-reduce. Either way nobody hangs.
int NcclTwoRanksOneGpu(const Args& args) {
  absl::StatusOr<std::string> id =
      ShareNcclUniqueId(*args.store, "nccl/id", args.rank, absl::Seconds(20));
  PEER_CHECK(id.ok(), id.status());
  NcclOptions options;
  options.rank = args.rank;
  options.size = args.size;
  options.unique_id = *id;
  options.timeout = absl::Seconds(20);
  const absl::Time start = absl::Now();
  auto comm = NcclCommunicator::Create(options);
  if (!comm.ok()) return ReportResult(args, comm.status(), absl::Now() - start);
  const size_t n = 4096;
  std::vector<float> data = RankFloats(args.seed, args.rank, n, 1);
  std::vector<float> expected(n, 0.0f);
  for (int r = 0; r < args.size; ++r) {
    std::vector<float> other = RankFloats(args.seed, r, n, 1);
    for (size_t i = 0; i < n; ++i) expected[i] += other[i];
  }
  float* device = nullptr;
  PEER_CHECK(cudaMalloc(reinterpret_cast<void**>(&device), n * sizeof(float)) == cudaSuccess,
             "cudaMalloc");
  PEER_CHECK(
      cudaMemcpy(device, data.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess,
      "cudaMemcpy");
  absl::Status s = (*comm)->AllReduceSum(device, n);
  PEER_CHECK(s.ok(), s);
  PEER_CHECK(
      cudaMemcpy(data.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess,
      "cudaMemcpy");
  cudaFree(device);
  for (size_t i = 0; i < n; ++i) {
    PEER_CHECK(data[i] == expected[i], "[" << i << "] " << data[i] << " != " << expected[i]);
  }
  return ReportResult(args, absl::OkStatus(), absl::Now() - start);
}
#endif

}  // namespace
}  // namespace tandem::comm::testing

int main(int argc, char** argv) {
  using namespace tandem::comm::testing;  // NOLINT
  alarm(60);
  if (argc != 6) {
    std::cerr << "usage: comm_test_peer <mode> <rank> <size> <store host:port> <seed>\n";
    return 2;
  }
  Args args;
  if (!absl::SimpleAtoi(argv[2], &args.rank) || !absl::SimpleAtoi(argv[3], &args.size) ||
      !absl::SimpleAtoi(argv[5], &args.seed)) {
    std::cerr << "comm_test_peer: bad rank, size or seed\n";
    return 2;
  }
  tandem::comm::TcpStoreClient store(argv[4]);
  args.store = &store;
  const std::map<std::string, std::function<int(const Args&)>> modes = {
#ifdef TANDEM_TEST_GLOO
      {"gloo_collectives", GlooCollectives},
      {"gloo_kill", GlooKill},
      {"gloo_stuck", GlooStuck},
      {"gloo_abort", GlooAbort},
#endif
#ifdef TANDEM_TEST_NCCL
      {"nccl_two_ranks_one_gpu", NcclTwoRanksOneGpu},
#endif
#ifdef TANDEM_TEST_UCX
      {"ucx_sendrecv", UcxSendRecv},
      {"ucx_kill", UcxKill},
      {"ucx_abort_interrupt", UcxAbortInterrupt},
      {"ucx_send_failures", UcxSendFailures},
      {"ucx_collectives", UcxCollectives},
      {"ucx_collectives_kill", UcxCollectivesKill},
#endif
  };
  std::string mode = argv[1];
#ifdef TANDEM_TEST_UCX
  if (mode.size() > 4 && mode.substr(mode.size() - 4) == "_tcp") {
    g_ucx_shared_memory = false;
    mode.resize(mode.size() - 4);
  }
#endif
  auto it = modes.find(mode);
  if (it == modes.end()) {
    std::cerr << "comm_test_peer: unknown mode " << argv[1] << "\n";
    return 2;
  }
  return it->second(args);
}
