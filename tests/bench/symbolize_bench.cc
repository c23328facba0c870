// Benchmark of the report side: symbolizing and formatting an exit report of
// 1,000 held handles in 50 groups (50 distinct acquisition stacks, 20 frames
// each), through Reporter::FormatExit as the agent does at exit.
//
// What makes the figure honest:
//   - The stacks are real: each of the 50 sites is its own chain of noinline
//     functions (Chain<N, Site>) in this binary, built with -O2 -g, and the
//     stack is captured at its end by the tracker's CaptureStack (libunwind),
//     20 frames deep, as a hook captures it. Every other level calls the
//     next through an always_inline step, so about half of the program's
//     frames expand into an inlined frame plus its caller, as -O2 code does.
//     Halfway down, each chain goes through glibc's qsort (the comparator
//     continues the chain), so the stacks hold libc frames too, and libc's
//     separate debug info (libc6-dbg, where installed) is read as it is for a
//     real program's report (whose stacks end in __libc_start_call_main).
//   - 1,000 records: 20 per site, 40 sites of results with their SQL and 10
//     of connections, all with an identity and a query; the report
//     shows every group's stack and an example line, as at exit.
//   - main() checks before running that the 50 stacks are distinct and 20
//     frames deep, that the report has 1,000 handles in 50 groups, and that
//     it has file:line, inlined frames and libc frames; it exits 2 if not.
//
// Benchmarks (milliseconds per report, real time):
//   BM_FormatExit/cold     a fresh Reporter (so a fresh Symbolizer: empty
//                          cache, libdwfl's modules not yet read) per report:
//                          the cost of the one exit report a process makes.
//                          libdw itself is loaded once per process; that
//                          one-time dlopen is measured in main() and shown
//                          in the context as leakwatch_libdw_load_ms.
//   BM_FormatExit/warm     the same reporter every time: the cache is full;
//                          what is left is grouping and formatting.
//   BM_FormatExitJson/...  the same for LEAKWATCH_FORMAT=json.
//   BM_Symbolize/...       the symbolizer alone on the 50 stacks' pcs (each
//                          distinct pc once), cold and warm.
// The operating system's page cache is warm in all of them (the files were
// read before): "cold" is the symbolizer's state, not the disk's.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "report/log.h"
#include "report/symbolizer.h"
#include "report/reporter.h"
#include "tracker/kinds.h"
#include "tracker/stack.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

constexpr KindDesc kBenchResult{"bench.result", Family::kResult, 0,
                                "backend_pid"};
constexpr KindDesc kBenchConn{"bench.conn", Family::kConn, 1, "backend_pid"};

constexpr int kSites = 50;
constexpr int kResultSites = 40;     // the other 10 are connections
constexpr int kHandlesPerSite = 20;  // 1,000 handles in all
constexpr int kDepth = 20;           // frames per captured stack
constexpr int kChainFrames = 24;     // deeper than kDepth
constexpr int kQsortLevel = 10;      // where the chain goes through qsort

constexpr int64_t kMs = 1000000;
constexpr int64_t kNowNs = int64_t{7200} * 1000 * kMs;

struct Ctx {
  int n = 0;
  bool compared = false;  // the comparator continues the chain once
  uintptr_t frames[kMaxFrames] = {};
};

// --- call sites ----------------------------------------------------------

#if defined(__clang__)
#define LW_BENCH_NOINLINE __attribute__((noinline))
#else
#define LW_BENCH_NOINLINE __attribute__((noipa))
#endif

template <int N, int S>
void Chain(Ctx& c);

// An inlined step between two levels: the return address of the call in it
// lies in an inlined copy, which the report shows as two frames.
template <int N, int S>
[[gnu::always_inline]] inline void InlinedStep(Ctx& c) {
  Chain<N - 1, S>(c);
  asm volatile("" : : "r"(N * 7 + S) : "memory");
}

// qsort's comparator for site S: the chain continues below libc's frames.
template <int S>
int Compare(const void* a, const void* b) {
  Ctx* c = *static_cast<Ctx* const*>(a);
  if (!c->compared) {
    c->compared = true;
    Chain<kQsortLevel - 1, S>(*c);
  }
  asm volatile("" : : "r"(S), "r"(b) : "memory");
  return 0;
}

// Level N of site S (0 is the deepest, where the stack is captured). The asm
// after the call keeps it from being a tail call; its operand makes every
// body different, so no two sites share code.
template <int N, int S>
LW_BENCH_NOINLINE void Chain(Ctx& c) {
  asm volatile("" ::: "memory");
  if constexpr (N == 0) {
    c.n = CaptureStack(c.frames, kDepth);
  } else if constexpr (N == kQsortLevel) {
    Ctx* items[2] = {&c, &c};
    qsort(items, 2, sizeof(items[0]), &Compare<S>);
  } else if constexpr (N % 2 == 1) {
    InlinedStep<N, S>(c);
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

// --- the report's input ---------------------------------------------------

struct Workload {
  std::vector<std::vector<uintptr_t>> stacks;  // as captured
  std::vector<uintptr_t> distinct_pcs;
  ExitSnapshot snapshot;
};

// Captures the 50 stacks, interns them in the tracker's depot and makes the
// 1,000 records.
const Workload& GetWorkload() {
  static const Workload* const workload = [] {
    auto* w = new Workload;
    InitStackCapture();
    std::set<uintptr_t> pcs;
    Tracker& tracker = Tracker::Get();
    uint32_t identity =
        tracker.InternString("dbname=orders user=app host=10.0.0.5 port=5432");
    w->snapshot.now_ns = kNowNs;
    for (int s = 0; s < kSites; ++s) {
      Ctx c;
      kSiteEntry[s](c);
      w->stacks.emplace_back(c.frames, c.frames + c.n);
      pcs.insert(c.frames, c.frames + c.n);
      uint32_t stack_id =
          tracker.stacks().Put(c.frames, static_cast<uint32_t>(c.n));
      bool result = s < kResultSites;
      // As the hook keeps it (masked there, LEAKWATCH_SQL's default).
      uint32_t sql = tracker.InternString(
          "SELECT id, total, status FROM orders WHERE customer_id = ? AND "
          "status = ? LIMIT ?");
      for (int h = 0; h < kHandlesPerSite; ++h) {
        Record r;
        r.key = 0x5a0000001000ull + static_cast<uintptr_t>(s) * 0x10000 +
                static_cast<uintptr_t>(h) * 0x100;
        r.kind = result ? &kBenchResult : &kBenchConn;
        r.acquired_ns = kNowNs - (60 + s + h) * 1000 * kMs;
        r.active_ns = r.acquired_ns;
        r.stack_id = stack_id;
        r.identity = {identity, static_cast<uint32_t>(4000 + h)};
        r.tid = 100 + static_cast<uint32_t>(s % 4);
        r.query_id = sql;
        if (result) r.parent = 0x5b0000001000ull + static_cast<uintptr_t>(s);
        w->snapshot.held.push_back(
            Held{r, result ? Finding::kHeldTooLong : Finding::kIdleTooLong});
      }
    }
    w->snapshot.totals.acquired[kBenchResult.index] =
        kResultSites * kHandlesPerSite;
    w->snapshot.totals.acquired[kBenchConn.index] =
        (kSites - kResultSites) * kHandlesPerSite;
    w->snapshot.kinds[kBenchResult.index] = &kBenchResult;
    w->snapshot.kinds[kBenchConn.index] = &kBenchConn;
    w->distinct_pcs.assign(pcs.begin(), pcs.end());
    return w;
  }();
  return *workload;
}

Log& NullLog() {
  static Log* const log = new Log("");  // stderr; Format* never write it
  return *log;
}

// --- benchmarks ------------------------------------------------------------

void FormatCold(benchmark::State& state, Format format) {
  const Workload& w = GetWorkload();
  size_t bytes = 0;
  for (auto _ : state) {
    auto reporter =
        std::make_unique<Reporter>(Tracker::Get(), NullLog(), format);
    std::string out = reporter->FormatExit(w.snapshot);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
    state.PauseTiming();  // the agent never destroys its reporter
    reporter.reset();
    state.ResumeTiming();
  }
  state.counters["report_bytes"] = static_cast<double>(bytes);
  state.counters["handles"] = static_cast<double>(w.snapshot.held.size());
}

void FormatWarm(benchmark::State& state, Format format) {
  const Workload& w = GetWorkload();
  Reporter reporter(Tracker::Get(), NullLog(), format);
  std::string out = reporter.FormatExit(w.snapshot);  // fills the cache
  for (auto _ : state) {
    out = reporter.FormatExit(w.snapshot);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["report_bytes"] = static_cast<double>(out.size());
  state.counters["handles"] = static_cast<double>(w.snapshot.held.size());
}

void BM_FormatExit_Cold(benchmark::State& state) {
  FormatCold(state, kFormatText);
}
void BM_FormatExit_Warm(benchmark::State& state) {
  FormatWarm(state, kFormatText);
}
void BM_FormatExitJson_Cold(benchmark::State& state) {
  FormatCold(state, kFormatJson);
}
void BM_FormatExitJson_Warm(benchmark::State& state) {
  FormatWarm(state, kFormatJson);
}

size_t SymbolizeAll(Symbolizer& symbolizer, const std::vector<uintptr_t>& pcs) {
  size_t frames = 0;
  for (uintptr_t pc : pcs) frames += symbolizer.SymbolizeInlined(pc).size();
  return frames;
}

void BM_Symbolize_Cold(benchmark::State& state) {
  const Workload& w = GetWorkload();
  size_t frames = 0;
  for (auto _ : state) {
    auto symbolizer = std::make_unique<Symbolizer>();
    frames = SymbolizeAll(*symbolizer, w.distinct_pcs);
    state.PauseTiming();
    symbolizer.reset();
    state.ResumeTiming();
  }
  state.counters["pcs"] = static_cast<double>(w.distinct_pcs.size());
  state.counters["source_frames"] = static_cast<double>(frames);
}

void BM_Symbolize_Warm(benchmark::State& state) {
  const Workload& w = GetWorkload();
  Symbolizer symbolizer;
  size_t frames = SymbolizeAll(symbolizer, w.distinct_pcs);
  for (auto _ : state) {
    frames = SymbolizeAll(symbolizer, w.distinct_pcs);
    benchmark::DoNotOptimize(frames);
  }
  state.counters["pcs"] = static_cast<double>(w.distinct_pcs.size());
  state.counters["source_frames"] = static_cast<double>(frames);
}

#define LW_REPORT_BENCHMARK(fn) \
  BENCHMARK(fn)->Unit(benchmark::kMillisecond)->UseRealTime()
LW_REPORT_BENCHMARK(BM_FormatExit_Cold);
LW_REPORT_BENCHMARK(BM_FormatExit_Warm);
LW_REPORT_BENCHMARK(BM_FormatExitJson_Cold);
LW_REPORT_BENCHMARK(BM_FormatExitJson_Warm);
LW_REPORT_BENCHMARK(BM_Symbolize_Cold);
LW_REPORT_BENCHMARK(BM_Symbolize_Warm);

// --- set-up checks ----------------------------------------------------------

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "leakwatch_symbolize_bench: set-up check failed: %s\n",
               why.c_str());
  std::exit(2);
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// Checks that the workload is what the figures claim; returns a summary.
std::string VerifyWorkload() {
  const Workload& w = GetWorkload();
  std::set<std::vector<uintptr_t>> distinct(w.stacks.begin(), w.stacks.end());
  for (const auto& s : w.stacks) {
    if (s.size() != static_cast<size_t>(kDepth)) {
      Fail("a stack has " + std::to_string(s.size()) + " frames, expected " +
           std::to_string(kDepth) + " (unwinder: " + StackUnwinderName() + ")");
    }
  }
  if (distinct.size() != kSites) {
    Fail(std::to_string(distinct.size()) + " distinct stacks, expected " +
         std::to_string(kSites));
  }
  Reporter reporter(Tracker::Get(), NullLog());
  std::string text = reporter.FormatExit(w.snapshot);
  const std::string header = "1000 handles still held at exit, in " +
                             std::to_string(kSites) +
                             " groups by acquisition stack";
  if (text.find(header) == std::string::npos) {
    Fail("the report does not say \"" + header + "\":\n" + text);
  }
  size_t frame_lines = Count(text, "\n    #");
  size_t inlined = Count(text, " [inlined]\n");
  size_t with_line = Count(text, "symbolize_bench.cc:");
  size_t libc = Count(text, "libc.so.6+0x");
  if (inlined == 0 || with_line == 0 || libc == 0) {
    Fail("expected inlined frames, file:line and libc frames in:\n" + text);
  }
  return std::to_string(kSites) + " distinct " + std::to_string(kDepth) +
         "-frame stacks, " + std::to_string(w.distinct_pcs.size()) +
         " distinct pcs; report: " + std::to_string(frame_lines) +
         " frame lines (" + std::to_string(inlined) + " inlined, " +
         std::to_string(libc) + " in libc), " + std::to_string(text.size()) +
         " bytes";
}

}  // namespace
}  // namespace leakwatch

int main(int argc, char** argv) {
  using namespace leakwatch;
  setenv("LEAKWATCH_STACK_DEPTH", "20", 1);
  setenv("LEAKWATCH_THRESHOLD_MS", "30000", 1);
  for (const char* v :
       {"LEAKWATCH_CONN_THRESHOLD_MS", "LEAKWATCH_RESULT_THRESHOLD_MS",
        "LEAKWATCH_STMT_THRESHOLD_MS", "LEAKWATCH_THREAD_THRESHOLD_MS",
        "LEAKWATCH_SUPPRESSIONS", "LEAKWATCH_STATS", "LEAKWATCH_METRICS",
        "LEAKWATCH_SQL"}) {
    unsetenv(v);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // libdw is dlopen'ed once per process, by the first Symbolizer that is
  // used: timed here, before any benchmark, so none of them includes it.
  auto start = std::chrono::steady_clock::now();
  std::string backend = Symbolizer().backend();
  double load_ms = std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  if (backend != "libdwfl") Fail("backend is " + backend + ", not libdwfl");

  benchmark::AddCustomContext("leakwatch_workload", VerifyWorkload());
  benchmark::AddCustomContext("leakwatch_libdw_load_ms",
                              std::to_string(load_ms));
  benchmark::AddCustomContext("leakwatch_unwinder", StackUnwinderName());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
