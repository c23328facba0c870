// Micro-benchmark of the tracker's hot path: one Acquire + one Release, the
// way a hook makes them (Tracker::Get().Acquire(kind, key, info), later
// Tracker::Get().Release(key)), with and without stack capture.
//
// What makes the figure honest:
//   - 100 distinct call sites. Each site is its own chain of 24 noinline
//     functions (Chain<N, Site>), so every site has its own return addresses
//     at every level: the unwinder, the depot's hash and lookup and any cache
//     keyed on return addresses see 100 different stacks, called in a
//     shuffled order, not one stack over and over.
//   - Stack depth 24: the captured stack is 24 frames (3 shared: CaptureStack,
//     Tracker::Acquire, the op; then 21 of the site's own; the tracker is
//     linked into this binary, so there is no agent module whose frames
//     CaptureStack would skip), and the stack goes deeper than 24 +
//     CaptureStack's 8-frame slack, so the unwinder walks 32 frames, as it
//     does in the agent.
//   - Distinct handle keys: each thread cycles through 4096 malloc-like fake
//     addresses of its own (160 bytes apart, 640 KiB in all, in a region of
//     its own as a malloc arena's would be) and keeps 1024 handles live (each
//     iteration acquires one key and releases the one acquired 1024
//     iterations earlier), so the table has a steady population.
//   - main() checks once before running that the 100 captured stacks and
//     their tracker stack ids are distinct, 24 frames deep, and that the depot
//     holds them, and exits 2 if not; BM_AcquireRelease checks that the stack
//     is deep enough for the full 32-frame walk (else SkipWithError) and
//     reports it as the stack_frames counter.
//
// The tracker is configured once per process from the environment, so one
// process measures one configuration: --leakwatch_stack_depth=N (default 24,
// or $LEAKWATCH_STACK_DEPTH if set) selects it, and run_tracker_bench.sh runs
// depth 24 and depth 0 and prints both with their ratio. The live threshold is
// forced to 0, so no watchdog thread runs.
//
// Benchmarks:
//   BM_AcquireRelease/sites:100   the primary figure (time per pair);
//                                  threads:1 and threads:2 (real time, so
//                                  items_per_second is total throughput).
//   BM_AcquireRelease/sites:1     the same through one site: what a
//                                  one-stack benchmark would (wrongly) show.
//   BM_Part_*                      the pieces, for profiling: the call chain
//                                  alone (baseline to subtract; with 2
//                                  threads, the machine's own scaling for
//                                  work that shares nothing), CaptureStack,
//                                  the raw unwinder at 24 and 32 frames,
//                                  Depot::Put of the 100 stacks, and
//                                  ShardedTable Insert+Erase; the ones that
//                                  run in threads:2 too show which piece
//                                  stops scaling.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <x86intrin.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tracker/clock.h"
#include "tracker/depot.h"
#include "tracker/kinds.h"
#include "tracker/stack.h"
#include "tracker/table.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

constexpr KindDesc kBenchResult{"bench.result", Family::kResult, 0};

constexpr int kSites = 100;
constexpr int kChainFrames = 24;         // frames of each site's own call chain
constexpr int kDepth = 24;               // the stack depth under test
constexpr size_t kKeysPerThread = 4096;  // power of two
constexpr size_t kLive = 1024;           // handles held per thread
constexpr size_t kOrderLen = 40 * kSites;

// Everything the ops at the end of a chain need.
struct Ctx {
  void (*op)(Ctx&) = nullptr;
  uintptr_t key = 0;
  AcquireInfo info;
  int want = 0;  // frames for OpUnwind
  int n = 0;     // frames captured
  uintptr_t frames[kMaxFrames + 8] = {};
};

// --- call sites ----------------------------------------------------------

// GCC: noipa = noinline + noclone + no identical-code folding; clang does not
// fold functions at -O2 and does not know noipa.
#if defined(__clang__)
#define LW_BENCH_NOINLINE __attribute__((noinline))
#else
#define LW_BENCH_NOINLINE __attribute__((noipa))
#endif

// Frame N of site S. The asm after the call keeps it from being a tail call
// (the frame stays on the stack); its operand makes every body different, so
// no two sites share code even where a compiler folds identical functions.
template <int N, int S>
LW_BENCH_NOINLINE void Chain(Ctx& c) {
  asm volatile("" ::: "memory");
  if constexpr (N == 0) {
    c.op(c);
  } else {
    Chain<N - 1, S>(c);
  }
  asm volatile("" : : "r"(N * 1000 + S) : "memory");
}

using Entry = void (*)(Ctx&);

template <size_t... S>
constexpr std::array<Entry, sizeof...(S)> MakeSites(std::index_sequence<S...>) {
  return {&Chain<kChainFrames - 1, static_cast<int>(S)>...};
}
constexpr std::array<Entry, kSites> kSiteEntry =
    MakeSites(std::make_index_sequence<kSites>{});

// The order sites are called in: 40 shuffled permutations of 0..99 (every
// site equally often, no period a branch predictor could learn cheaply).
struct SiteOrder {
  std::array<uint8_t, kOrderLen> site;
  explicit SiteOrder(int sites) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    for (size_t p = 0; p < kOrderLen; p += kSites) {
      uint8_t perm[kSites];
      for (int i = 0; i < kSites; ++i)
        perm[i] = static_cast<uint8_t>(i % sites);
      for (int i = kSites - 1; i > 0; --i) {
        std::swap(perm[i], perm[next() % (i + 1)]);
      }
      std::memcpy(&site[p], perm, kSites);
    }
  }
};
const SiteOrder kOrder100(kSites);
const SiteOrder kOrder1(1);

const SiteOrder& OrderFor(int sites) {
  return sites == 1 ? kOrder1 : kOrder100;
}

// --- ops run at the end of a chain --------------------------------------

void OpAcquire(Ctx& c) { Tracker::Get().Acquire(&kBenchResult, c.key, c.info); }

void OpNothing(Ctx& c) { benchmark::DoNotOptimize(c.key); }

void OpCapture(Ctx& c) { c.n = CaptureStack(c.frames, kDepth); }

using UnwBacktraceFn = int (*)(void**, int);
UnwBacktraceFn RawUnwinder() {
  static UnwBacktraceFn fn = [] {
    void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    return lib ? reinterpret_cast<UnwBacktraceFn>(dlsym(lib, "unw_backtrace"))
               : nullptr;
  }();
  return fn;
}

void OpUnwind(Ctx& c) {
  c.n = RawUnwinder()(reinterpret_cast<void**>(c.frames), c.want);
}

// Malloc-like fake handle addresses, disjoint per thread.
inline uintptr_t KeyFor(int thread, size_t j) {
  return 0x5a0000000010ull + static_cast<uintptr_t>(thread) * 0x100000000ull +
         (j & (kKeysPerThread - 1)) * 0xa0;
}

// --- the primary benchmark ------------------------------------------------

// Per iteration: acquire a fresh key from the next site (through its 24-frame
// chain), release the key acquired kLive iterations earlier.
void RunPairs(benchmark::State& state, Ctx& c, int sites, bool release) {
  const int thread = state.thread_index();
  const uint8_t* order = OrderFor(sites).site.data();
  size_t o = static_cast<size_t>(thread) * 37 % kOrderLen;
  size_t i = 0;
  auto advance = [&o] {
    if (++o == kOrderLen) o = 0;
  };
  for (; i < kLive; ++i) {  // untimed: fill the live window
    c.key = KeyFor(thread, i);
    kSiteEntry[order[o]](c);
    advance();
  }
  for (auto _ : state) {
    c.key = KeyFor(thread, i);
    kSiteEntry[order[o]](c);
    if (release) Tracker::Get().Release(KeyFor(thread, i - kLive));
    ++i;
    advance();
  }
  if (release) {  // untimed: empty the window for the next run
    for (size_t j = i - kLive; j < i; ++j)
      Tracker::Get().Release(KeyFor(thread, j));
  }
  state.SetItemsProcessed(state.iterations());
}

// Frames on the stack where CaptureStack runs when a site acquires from inside
// the benchmark loop: OpUnwind sits where OpAcquire would, and CaptureStack
// and Tracker::Acquire add two frames. 0 if libunwind is absent.
int AcquirePointFrames() {
  if (RawUnwinder() == nullptr) return 0;
  Ctx c;
  c.op = &OpUnwind;
  c.want = kMaxFrames;
  kSiteEntry[0](c);
  return c.n + 2;
}

void BM_AcquireRelease(benchmark::State& state) {
  Ctx c;
  c.op = &OpAcquire;
  // The unwinder must have as many frames to walk as in the agent:
  // CaptureStack asks for depth + 4 (room for the agent's frames); the
  // check below keeps the older, larger margin of 8.
  int frames = AcquirePointFrames();
  if (frames != 0 && frames < kDepth + 8) {
    state.SkipWithError(("only " + std::to_string(frames) +
                         " frames at the acquire point, need " +
                         std::to_string(kDepth + 8))
                            .c_str());
    return;
  }
  RunPairs(state, c, static_cast<int>(state.range(0)), true);
  state.counters["stack_frames"] =
      benchmark::Counter(frames, benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_AcquireRelease)
    ->ArgName("sites")
    ->Arg(kSites)
    ->Arg(1)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// --- the pieces -----------------------------------------------------------

// The 100 chains alone with nothing at the end: subtract from the above. With
// 2 threads it is the machine's own scaling for work that shares nothing.
void BM_Part_Chain(benchmark::State& state) {
  Ctx c;
  c.op = &OpNothing;
  RunPairs(state, c, kSites, false);
}
BENCHMARK(BM_Part_Chain)->Threads(1)->Threads(2)->UseRealTime();

// CaptureStack(24) at the end of the chains (walks 24 + 8 slack frames).
void BM_Part_CaptureStack(benchmark::State& state) {
  InitStackCapture();
  Ctx c;
  c.op = &OpCapture;
  RunPairs(state, c, kSites, false);
  state.SetLabel(StackUnwinderName());
}
BENCHMARK(BM_Part_CaptureStack)->Threads(1)->Threads(2)->UseRealTime();

// libunwind's unw_backtrace called directly for `frames` frames.
void BM_Part_Unwind(benchmark::State& state) {
  if (RawUnwinder() == nullptr) {
    state.SkipWithError("libunwind.so.8 not found");
    return;
  }
  Ctx c;
  c.op = &OpUnwind;
  c.want = static_cast<int>(state.range(0));
  RunPairs(state, c, kSites, false);
}
BENCHMARK(BM_Part_Unwind)->ArgName("frames")->Arg(24)->Arg(32);

// The 100 sites' stacks as CaptureStack returns them, captured once.
const std::vector<std::vector<uintptr_t>>& SiteStacks() {
  static const std::vector<std::vector<uintptr_t>> stacks = [] {
    InitStackCapture();
    std::vector<std::vector<uintptr_t>> v;
    Ctx c;
    c.op = &OpCapture;
    for (int s = 0; s < kSites; ++s) {
      kSiteEntry[s](c);
      v.emplace_back(c.frames, c.frames + c.n);
    }
    return v;
  }();
  return stacks;
}

// Depot::Put of the 100 stacks (all present after the first round: lookups).
void BM_Part_DepotPut(benchmark::State& state) {
  static Depot<uintptr_t>* depot = new Depot<uintptr_t>();
  const auto& stacks = SiteStacks();
  const uint8_t* order = kOrder100.site.data();
  size_t o = static_cast<size_t>(state.thread_index()) * 37 % kOrderLen;
  for (auto _ : state) {
    const auto& s = stacks[order[o]];
    uint32_t id = depot->Put(s.data(), static_cast<uint32_t>(s.size()));
    benchmark::DoNotOptimize(id);
    if (++o == kOrderLen) o = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Part_DepotPut)->Threads(1)->Threads(2)->UseRealTime();

// ShardedTable Insert + Erase on the same key pattern, without the tracker.
void BM_Part_TableInsertErase(benchmark::State& state) {
  static ShardedTable* table = new ShardedTable();
  const int thread = state.thread_index();
  Record r;
  r.kind = &kBenchResult;
  r.stack_id = 1;
  r.tid = static_cast<uint32_t>(thread);
  size_t i = 0;
  for (; i < kLive; ++i) {
    r.key = KeyFor(thread, i);
    table->Insert(r, nullptr);
  }
  Record removed;
  for (auto _ : state) {
    r.key = KeyFor(thread, i);
    r.acquired_ns = static_cast<int64_t>(i);
    table->Insert(r, nullptr);
    table->Erase(KeyFor(thread, i - kLive), &removed);
    ++i;
  }
  for (size_t j = i - kLive; j < i; ++j)
    table->Erase(KeyFor(thread, j), nullptr);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Part_TableInsertErase)->Threads(1)->Threads(2)->UseRealTime();

// NowNs() + CurrentTid(): the rest of what Acquire does.
void BM_Part_ClockAndTid(benchmark::State& state) {
  for (auto _ : state) {
    int64_t t = NowNs();
    uint32_t tid = Tracker::CurrentTid();
    benchmark::DoNotOptimize(t);
    benchmark::DoNotOptimize(tid);
  }
}
BENCHMARK(BM_Part_ClockAndTid);

// The two clocks a hook could read: NowNs() (CLOCK_MONOTONIC_COARSE through
// the vDSO) and the TSC, which callgrind counts as one instruction. The hooks
// read NowNs(): on the development machine the TSC was the slower (9.4 ns
// against 3.5 ns).
void BM_Part_CoarseClock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(NowNs());
}
BENCHMARK(BM_Part_CoarseClock);

void BM_Part_Rdtsc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(__rdtsc());
}
BENCHMARK(BM_Part_Rdtsc);

// --- set-up checks --------------------------------------------------------

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "leakwatch_tracker_bench: set-up check failed: %s\n",
               why.c_str());
  std::exit(2);
}

// Checks once that the sites are what the figures claim: 100 different
// stacks, really kDepth frames deep (and deeper than the unwinder's walk),
// interned as 100 different ids by the tracker. Returns a summary.
std::string VerifySites(int depth) {
  // Independent of the tracker's configuration: what CaptureStack sees.
  const auto& stacks = SiteStacks();
  std::set<std::vector<uintptr_t>> distinct(stacks.begin(), stacks.end());
  std::set<uintptr_t> deepest;
  for (const auto& s : stacks) {
    if (s.size() != static_cast<size_t>(kDepth)) {
      Fail("CaptureStack returned " + std::to_string(s.size()) +
           " frames at a site, expected " + std::to_string(kDepth) +
           " (unwinder: " + StackUnwinderName() + ")");
    }
    deepest.insert(s.back());
  }
  if (distinct.size() != kSites || deepest.size() != kSites) {
    Fail(std::to_string(distinct.size()) + " distinct stacks and " +
         std::to_string(deepest.size()) + " distinct frames at depth " +
         std::to_string(kDepth) + " over " + std::to_string(kSites) + " sites");
  }
  // Through the tracker: one acquire per site, then read the record back.
  Tracker& t = Tracker::Get();
  Ctx c;
  c.op = &OpAcquire;
  std::set<uint32_t> ids;
  for (int s = 0; s < kSites; ++s) {
    c.key = 0x7e0000000010ull + static_cast<uintptr_t>(s) * 0x40;
    kSiteEntry[s](c);
    uint32_t id = UINT32_MAX;
    if (!t.table().Update(c.key, [&](Record& r) { id = r.stack_id; })) {
      Fail("an acquired key is not in the table");
    }
    if (depth > 0) {
      Depot<uintptr_t>::View v = t.stacks().Get(id);
      if (id == 0 || v.size != static_cast<uint32_t>(depth)) {
        Fail("site " + std::to_string(s) + ": stack id " + std::to_string(id) +
             " with " + std::to_string(v.size) + " frames, expected " +
             std::to_string(depth));
      }
    } else if (id != 0) {
      Fail("stack id " + std::to_string(id) + " recorded at depth 0");
    }
    ids.insert(id);
    t.Release(c.key);
  }
  if (depth > 0 && (ids.size() != kSites || t.stacks().size() < kSites)) {
    Fail(std::to_string(ids.size()) + " distinct stack ids, depot has " +
         std::to_string(t.stacks().size()) + " stacks; expected " +
         std::to_string(kSites));
  }
  if (depth == 0 && t.stacks().size() != 0) Fail("stacks interned at depth 0");
  if (t.table().size() != 0) Fail("records left in the table");
  std::string distinct_frames = std::to_string(kSites) + " sites, distinct " +
                                std::to_string(kDepth) +
                                "-frame stacks as captured";
  if (depth == 0) return distinct_frames + "; tracker records no stacks";
  return distinct_frames + "; tracker: " + std::to_string(ids.size()) +
         " distinct stack ids, depot has " + std::to_string(t.stacks().size()) +
         " stacks of " + std::to_string(depth) + " frames";
}

}  // namespace
}  // namespace leakwatch

int main(int argc, char** argv) {
  using namespace leakwatch;
  // Our own flag, removed before Google Benchmark sees the arguments.
  const char* depth_text = getenv("LEAKWATCH_STACK_DEPTH");
  std::string depth_arg = depth_text != nullptr ? depth_text : "24";
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    static const char kFlag[] = "--leakwatch_stack_depth=";
    if (std::strncmp(argv[i], kFlag, sizeof(kFlag) - 1) == 0) {
      depth_arg = argv[i] + sizeof(kFlag) - 1;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  argv[argc] = nullptr;
  // The tracker reads these on the first Tracker::Get(), below.
  setenv("LEAKWATCH_STACK_DEPTH", depth_arg.c_str(), 1);
  setenv("LEAKWATCH_THRESHOLD_MS", "0", 1);  // no watchdog, no live reports
  for (const char* v :
       {"LEAKWATCH_CONN_THRESHOLD_MS", "LEAKWATCH_RESULT_THRESHOLD_MS",
        "LEAKWATCH_STMT_THRESHOLD_MS", "LEAKWATCH_THREAD_THRESHOLD_MS"}) {
    unsetenv(v);
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  int depth = static_cast<int>(Tracker::Get().options().stack_depth);
  if (std::to_string(depth) != depth_arg) {
    Fail("LEAKWATCH_STACK_DEPTH=" + depth_arg + " was not accepted");
  }
  std::string verified = VerifySites(depth);
  benchmark::AddCustomContext("leakwatch_stack_depth", std::to_string(depth));
  benchmark::AddCustomContext(
      "leakwatch_unwinder", depth > 0 ? StackUnwinderName() : "none (depth 0)");
  benchmark::AddCustomContext("leakwatch_sites", verified);
  benchmark::AddCustomContext(
      "leakwatch_workload",
      std::to_string(kChainFrames) + "-frame chain per site, " +
          std::to_string(kLive) + " live handles per thread, " +
          std::to_string(kKeysPerThread) + " keys per thread");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
