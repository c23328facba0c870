// The tracker: the process-wide owner of the live-handle table, the stack and
// string depots, the options and the watchdog. It knows nothing of databases:
// the interpose layer tells it "a handle of kind K appeared at key X" and
// "key X went away", and the report module (an EventSink) turns what the
// watchdog and the exit path find into words.
//
// Thread safety: every method may be called from any thread. The methods
// marked "hook-safe" may be called from inside an interposed function: they
// take at most one shard lock (never the report's locks), do no I/O, and
// never throw. Errno is the caller's business (hooks save and restore it).
//
// Lifetime: Tracker::Get() creates the one instance on first use, from
// whichever hook or constructor runs first; it is never destroyed, because
// other libraries' destructors may still call hooks after ours has run.
#ifndef LEAKWATCH_TRACKER_TRACKER_H_
#define LEAKWATCH_TRACKER_TRACKER_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tracker/clock.h"
#include "tracker/depot.h"
#include "tracker/kinds.h"
#include "tracker/options.h"
#include "tracker/reach.h"
#include "tracker/script_stack.h"
#include "tracker/scrub.h"
#include "tracker/stack.h"
#include "tracker/table.h"
#include "tracker/thread_block.h"

namespace leakwatch {

// What the leak rules say of a handle now (Tracker::Judge). The tracker
// decides; the reports render the finding and never judge again.
enum class Finding : uint8_t {
  kNone,            // within its family's rule
  kHeldTooLong,     // result, stmt: held past the threshold since acquired
  kIdleTooLong,     // conn: no activity for longer than the threshold
  kOutlivedParent,  // lives with its parent and outlived it by the threshold
  kNeverJoined,     // thread: exited, and not joined within the threshold
  kGrowingSite,     // thread: running, from a creation site that keeps
                    // growing; statement (KindDesc::judged_by_growth):
                    // idle past the threshold, never used again, from a
                    // site whose such statements keep growing
  kLost,            // past its threshold, and no pointer to it is left
  kIndirectlyLost,  // past its threshold, only lost handles point to it
};

// True for the findings that mean "past its family's threshold" (a growing
// site's running threads are judged by their site, not by a threshold; a
// growing site's statements are idle past the threshold).
constexpr bool PastThreshold(Finding f, Family family) {
  return f != Finding::kNone &&
         (f != Finding::kGrowingSite || family != Family::kThread);
}

// What the idle rule of a connection knows of its acquisition site (the
// connections from the same stack), made by the scan from the connections
// open now and the site's history.
struct ConnContext {
  // Longest idle gap after which a connection of the site was used again
  // (0: none ever was): the site is a pool.
  int64_t site_gap_ns = 0;
  // Another open connection of the site was opened within the threshold of
  // this one (a pool filled at start-up).
  bool batch = false;
  // Latest activity on another open connection of the site (INT64_MIN: none).
  int64_t others_active_ns = INT64_MIN;
};

// A record and what the rules found when it was taken.
struct Held {
  Record record;
  Finding finding = Finding::kNone;
  // At exit: false for a handle still reachable that no rule convicts (a
  // pool's connection): listed apart, not counted (LEAKWATCH_EXIT_REACHABLE).
  bool convicted = true;
};

// Counts of the reachability scans, for stats and tests.
struct ReachTotals {
  uint64_t scans = 0;         // scans that made verdicts
  uint64_t failures = 0;      // scans that could not be made
  int64_t last_pause_ns = 0;  // the host's pause in the last scan
  int64_t max_pause_ns = 0;
  const char* failure = "";  // why the last failed scan failed
};

// A note the watchdog passes on about a handle that had been reported live.
struct LiveNote {
  enum Type : uint8_t {
    kReleased,     // released `held_ns` after acquisition
    kActiveAgain,  // an idle-reported connection was used again
  };
  Type type;
  Record record;  // as it was when the note was made
  int64_t at_ns;  // when it happened
};

// A site that keeps growing (see Tracker::Scan): running threads from one
// creation stack, or idle connections or statements never used again from
// one acquisition stack (oldest.kind says which).
struct SiteGrowth {
  Record oldest;          // the site's oldest running thread / connection /
                          // statement
  uint32_t count = 0;     // threads older than / connections or statements
                          // idle past the threshold
  uint32_t previous = 0;  // count at the site's last warning; 0 = first
  int64_t span_ns = 0;    // their creation times span this long
};

// Counts for live metrics, taken by a scan when LEAKWATCH_METRICS is set.
struct MetricsSnapshot {
  uint64_t open[kMaxKinds] = {};            // held now
  uint64_t peak_open[kMaxKinds] = {};       // highest `open` at any scan
  uint64_t past_threshold[kMaxKinds] = {};  // held now, past the threshold
  uint64_t reported[kMaxKinds] = {};        // live warnings since start
  ShardedTable::Totals totals;              // acquired/released since start
  const KindDesc* kinds[kMaxKinds] = {};    // kinds seen, by index
  uint64_t threads_live = 0;                // threads not yet exited
  struct Connections {                      // per (kind, identity text)
    const KindDesc* kind = nullptr;
    uint32_t identity_string_id = 0;
    uint64_t open = 0, idle = 0, in_use = 0, pinned = 0;
  };
  std::vector<Connections> connections;
};

// A report site: a kind and an acquisition stack.
inline uint64_t SiteKey(const Record& r) {
  return (static_cast<uint64_t>(r.kind->index) << 32) | r.stack_id;
}

// What is held now, for the JSON log's timeline (`sample` events): per kind,
// the same count as MetricsSnapshot::open, and per site for the sites the
// sink names (EventSink::SampleSites). Taken by a scan's walk of the table,
// and by the exit snapshot's, when the sink wants samples; no allocation.
struct OpenSample {
  static constexpr int kMaxSites = 32;
  uint64_t open[kMaxKinds] = {};          // held now, not inherited
  const KindDesc* kinds[kMaxKinds] = {};  // kinds seen, by index
  int num_sites = 0;
  // The sites asked for, in the sink's order: SiteKey (kind index << 32 |
  // stack id) and how many records of it are held now.
  uint64_t site_key[kMaxSites] = {};
  uint64_t site_open[kMaxSites] = {};
};

// What the watchdog found in one scan.
struct ScanEvents {
  int64_t now_ns = 0;
  ScrubbedVector<Held> overdue;        // found by a rule for the first time
  ScrubbedVector<SiteGrowth> growing;  // sites that grew past a doubling
  ScrubbedVector<LiveNote> notes;  // released or active again since last scan
  uint64_t notes_dropped = 0;      // notes lost because the queue was full
  const MetricsSnapshot* metrics = nullptr;  // when LEAKWATCH_METRICS is set
  const OpenSample* sample = nullptr;        // when the sink wants samples
};

// What is held now (at exit, or for a periodic report).
struct ExitSnapshot {
  int64_t now_ns = 0;
  // Still held, not inherited across fork, each with its finding. Threads:
  // those that exited and were never joined, and the running threads of
  // growing sites only. Handles that end with their parent (ends_with_parent)
  // whose parent is gone are left out.
  ScrubbedVector<Held> held;
  ScrubbedVector<LiveNote> notes;         // notes not yet passed on
  ShardedTable::Totals totals;            // per kind index
  const KindDesc* kinds[kMaxKinds] = {};  // kinds seen, by index
  int shards_skipped = 0;  // shard locks not had before the deadline
  uint64_t dropped = 0;    // events dropped for lack of memory
  // At exit, when the sink wants samples: what is held now, counted as a
  // scan counts (OpenSample), less the handles whose session ended with
  // their parent (left out of `held` too); skipped shards not counted.
  bool sampled = false;
  OpenSample sample;
};

// A misuse seen in a hook: a second release of a handle, or a call on a
// connection that was already closed.
struct Misuse {
  enum Type : uint8_t { kDoubleRelease, kUseAfterClose };
  Type type;
  const char* function;  // the call that misused it ("PQclear")
  ReleasedRecord first;  // the earlier release
  uint32_t stack_id;     // this call's stack
  uint32_t tid;          // this call's thread
  int64_t now_ns;
};

// Implemented by the report module. Never called under a tracker lock. OnScan,
// OnPeriodic and OnExit run on the watchdog thread (OnExit on the exiting
// thread when there is no watchdog); OnMisuse runs inside the hook that saw
// the misuse; OnExitAbandoned on the exiting thread.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnScan(const ScanEvents& events) = 0;
  virtual void OnExit(const ExitSnapshot& snapshot) = 0;
  // LEAKWATCH_REPORT_INTERVAL: what is held past its threshold now (the
  // snapshot's `held`), from the watchdog thread.
  virtual void OnPeriodic(const ExitSnapshot& snapshot) {}
  // `leakwatch report` (Tracker::DemandReport), on the caller's thread.
  virtual void OnDemand(const ExitSnapshot& snapshot) {}
  // A misuse, reported synchronously from inside the hook, before the real
  // call (which may abort the process). Not under any tracker lock.
  virtual void OnMisuse(const Misuse& misuse) {}
  // A line the agent says about itself, from a hook (`what` names it: e.g.
  // "deepbind"). Not under any tracker lock.
  virtual void OnNotice(std::string_view what, std::string_view text) {}
  // The exit report was handed to the watchdog thread and it made no
  // progress for `waited_ms`: one line, written without allocating memory
  // (the exiting thread may have interrupted malloc).
  virtual void OnExitAbandoned(int64_t waited_ms) {}
  // Samples (OpenSample): whether the sink wants one with the exit snapshot
  // (ExitSnapshot::sample); whether it wants one with the scan at `now_ns`
  // (ScanEvents::sample; OnScan is then called even with nothing else to
  // say); and the sites to count in them (SiteKey), at most
  // OpenSample::kMaxSites written to `keys`, how many returned. Asked on the
  // scanning thread before the table is walked: they must neither block nor
  // allocate.
  virtual bool WantsSamples() const { return false; }
  virtual bool WantsSampleAt(int64_t now_ns) const { return false; }
  virtual int SampleSites(uint64_t* keys) const { return 0; }
  // fork(): the sink takes its own locks before and releases them after.
  virtual void PrepareFork() {}
  virtual void ParentAfterFork() {}
  virtual void ChildAfterFork() {}
};

struct AcquireInfo {
  uintptr_t parent = 0;     // e.g. the connection a result came from
  Identity identity;        // describes the handle (or its parent)
  uint16_t flags = 0;       // initial RecordFlags: kPinsParent, and for a
                            // thread kExited and kDetached
  uintptr_t code = 0;       // Record::code (a thread's start routine)
  uint32_t serial = 0;      // Record::serial
  uint32_t query_id = 0;    // Record::query_id
  int64_t exited_ns = 0;    // with kExited: when the thread exited
  uint32_t stack_id = 0;    // if nonzero, this stack (from CaptureStackId)
                            // rather than the caller's
  uint32_t tid = 0;         // if nonzero, the acquiring thread's tid (a
                            // thread recording its own creation)
  int64_t acquired_ns = 0;  // if nonzero, the NowNs() of the acquisition
                            // (a hook that read the clock already)
};

// Starts a thread of the agent's own (the watchdog, the attach module's
// workers), named "leakwatch": every signal blocked (the host's handlers
// never run on it), detached, a 1 MiB stack. The caller makes sure it is
// not tracked.
bool StartAgentThread(pthread_t* thread, void* (*fn)(void*), void* arg);

namespace tracker_internal {

// This thread's cache of the records it recorded activity on: key -> the
// record in the table (records never move, and their memory is never
// unmapped), so that activity on a connection this thread uses is recorded
// without the shard's lock (Tracker::UseLockFree). An entry is only a hint:
// the record's key is checked at each use. Keys are kept complemented, so
// that the reachability scan (which reads every thread's TLS) never takes
// one for a pointer to the handle.
struct HotEntry {
  uintptr_t disguised_key;  // ~key; 0 = empty
  Record* record;
};
inline constexpr unsigned kHotEntries = 8;
extern __attribute__((
    tls_model("initial-exec"))) __thread HotEntry t_hot[kHotEntries];
// The last activity this thread recorded (TouchAt), for the skip in
// TouchAt and TouchActivity: the handle (complemented, as above), the time
// then and the query it set (0 = none). Cleared by BeginCall and by a
// release of it.
extern
    __attribute__((tls_model("initial-exec"))) __thread uintptr_t t_touched_key;
extern __attribute__((tls_model("initial-exec"))) __thread int64_t t_touched_ns;
extern __attribute__((
    tls_model("initial-exec"))) __thread uint32_t t_touched_query;
// Kernel tid of this thread, 0 until first asked (Tracker::CurrentTid).
extern __attribute__((tls_model("initial-exec"))) __thread uint32_t t_tid;

inline uintptr_t Disguise(uintptr_t key) { return ~key; }
inline HotEntry& HotSlot(uintptr_t key) {
  return t_hot[((key >> 4) ^ (key >> 12)) & (kHotEntries - 1)];
}
// The record of `key` if this thread's cache has it and it still holds `key`.
inline Record* HotRecord(uintptr_t key) {
  HotEntry& e = HotSlot(key);
  if (e.disguised_key != Disguise(key)) return nullptr;
  Record* r = e.record;
  return __atomic_load_n(&r->key, __ATOMIC_RELAXED) == key ? r : nullptr;
}

// Ends this thread's call on `key` noted in its young slot
// (Tracker::BeginCallInHook), if that is the call it is in.
__attribute__((always_inline)) inline void EndCallInHook(uintptr_t key) {
  young_internal::YoungSlot* y = young_internal::t_young;
  if (y != nullptr && y->in_call.load(std::memory_order_relaxed) == key) {
    y->in_call.store(0, std::memory_order_release);
  }
}

// Touch's work on a record in use: the call it was in (if any) is over,
// and `set_query_id` (if nonzero) becomes its query.
__attribute__((always_inline)) inline void EndUse(Record& r,
                                                  uint32_t set_query_id) {
  if (LoadFlags(r) & kInCall) ClearFlags(r, kInCall);
  if (set_query_id != 0) {
    __atomic_store_n(&r.query_id, set_query_id, __ATOMIC_RELAXED);
  }
}

// What Touch tells its caller about a record (where the pointer is set).
__attribute__((always_inline)) inline void ReadUse(const Record& r,
                                                   Identity* identity,
                                                   uintptr_t* parent,
                                                   uint32_t* query_id) {
  if (identity != nullptr) *identity = r.identity;
  if (parent != nullptr) *parent = r.parent;
  if (query_id != nullptr) {
    *query_id = __atomic_load_n(&r.query_id, __ATOMIC_RELAXED);
  }
}

}  // namespace tracker_internal

class Tracker {
 public:
  // The one instance; created on first call (parses the options and prints a
  // line on stderr per bad value). Hook-safe.
  static Tracker& Get() {
    Tracker* t = instance_.load(std::memory_order_acquire);
    return t != nullptr ? *t : Create();
  }

  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  const Options& options() const { return options_; }
  bool Tracks(uint32_t library) const {
    return (track_.load(std::memory_order_relaxed) & library) != 0;
  }

  // --- `leakwatch attach`: sessions -----------------------------------------
  // An agent loaded into a running process is inert (tracks nothing) until a
  // session begins, and again after it ends; the library stays loaded.
  //
  // The options a tracker created from now on takes instead of the
  // environment's (bad values were said by the attaching command). Before
  // the first Get().
  static void UseOptions(const Options& options);
  // A session begins with `options`: what an earlier session left (records,
  // the recently released, pending notes) is forgotten, totals count from
  // now, and the hooks of `options.track` are active. `configured`, if set,
  // runs once the options are in force and before anything is tracked (the
  // report module is made again then). The watchdog must be stopped (a
  // first session, or after EndSession).
  void BeginSession(const Options& options, void (*configured)() = nullptr);
  // The session ends: nothing is tracked any more and the watchdog stops
  // (waited for, bounded by `wait_ms`). False if it did not stop in time.
  bool EndSession(int64_t wait_ms);
  bool InSession() const {
    return session_ns_.load(std::memory_order_acquire) != 0;
  }
  // NowNs() as the session began; 0 outside one.
  int64_t session_ns() const {
    return session_ns_.load(std::memory_order_acquire);
  }
  // A connection first seen in use in a session (a query on a handle it
  // never saw acquired): tracked from now, flagged kAdopted, held since the
  // session began, its stack the stack of this use. False outside a
  // session. Hook-safe.
  bool Adopt(const KindDesc* kind, uintptr_t key, AcquireInfo info);
  // What is held past its threshold now, with the session's totals, to the
  // sink (OnDemand) even when nothing is: `leakwatch report`.
  void DemandReport();
  // The table's totals; in a session, since it began, without the adopted
  // handles (Totals::adopted) and their releases.
  ShardedTable::Totals Totals();
  // Runs after every watchdog scan (the attach module looks for modules
  // loaded since). Set once.
  void SetScanHook(void (*hook)()) {
    scan_hook_.store(hook, std::memory_order_release);
  }

  // The leak rule of `r`'s family at `now_ns` (the README states them):
  // whether it is past its threshold, and why. `parent_alive` says whether
  // the handle a lives-with-parent kind came from is still tracked. A running
  // thread is kNone here: growth is a property of its site (Scan). Every
  // report, live or at exit, and the metrics take their verdicts from here.
  // A connection is judged with what its site knows (`conn`; default: a
  // site of one connection never reused); its verdict of reachability is in
  // the record (Record::reach).
  Finding Judge(const Record& r, int64_t now_ns, bool parent_alive,
                const ConnContext& conn = ConnContext()) const;

  // The exit point (exit() or main's return, before atexit handlers and
  // static destructors free what the program's globals point to): has the
  // watchdog decide the reachability of every handle held now, and waits for
  // it (bounded). Later calls do nothing.
  // `main_returned`: main has returned and this is the main thread, whose
  // stack then holds no frame of the program's, only stale copies of what
  // its frames held (they would make lost handles look reachable): it is not
  // scanned.
  void ExitPoint(bool main_returned = false);

  // The interpreter running the program (Python, Perl, Ruby) has begun its
  // shutdown: the script's main program is over, and what the interpreter
  // frees from now on the script never released. The exit point is now
  // (ExitPoint); every handle released from now on stays in the exit report
  // as still held, flagged kReleasedAtShutdown, and activity on a handle is
  // not use. Idempotent. Not from the watchdog; not with a table lock held.
  void BeginInterpreterShutdown();
  bool InInterpreterShutdown() const {
    return shutdown_begun_.load(std::memory_order_acquire);
  }
  // What the interpose layer's test says of the calling thread (it may
  // unwind the stack). kShutdownIfLast: the main program's last scope is
  // being left (Perl frees a script's file-scope variables there, before
  // its shutdown proper); a release now is the interpreter's if nothing the
  // script does follows it (Release's `tentative`). kEndOfRequest: the
  // interpreter frees the request's resources as it is designed to (PHP,
  // whose scripts are not expected to close their links): a release is a
  // release, but activity is not use.
  enum ShutdownVerdict : int {
    kNotShutdown,
    kShutdown,
    kShutdownIfLast,
    kEndOfRequest
  };
  using ShutdownProbe = ShutdownVerdict (*)();
  // The program is a script interpreter (Python, Perl, Ruby, PHP), whose
  // shutdown `probe` tells apart: run on a release, on the first use of a
  // handle reported idle, and on activity while a tentative release waits,
  // until it says kShutdown once. Set once, as the agent starts.
  //
  // A script interpreter's drivers also own the results of a connection and
  // free them with their objects (DBD::Pg and psycopg 3 keep a connection's
  // last result until the next statement, Ruby's pg leaves results to the
  // garbage collector): a result from a connection is judged with the
  // connection, not by how long it is held — within the connection's rule,
  // or after the script closed the connection (the driver's object keeps it
  // until it dies, as psycopg2's cursor does), it is no leak unless lost.
  void SetShutdownProbe(ShutdownProbe probe) {
    shutdown_probe_.store(probe, std::memory_order_release);
  }
  bool IsScriptInterpreter() const {
    return shutdown_probe_.load(std::memory_order_relaxed) != nullptr;
  }
  // Runs the probe unless the shutdown is known; begins it on kShutdown; on
  // kNotShutdown, the tentative releases waiting were the script's
  // (ConfirmTentative). On every release: one load for a program that is
  // not an interpreter.
  ShutdownVerdict ProbeInterpreterShutdown() {
    if (shutdown_probe_.load(std::memory_order_relaxed) == nullptr &&
        !shutdown_begun_.load(std::memory_order_relaxed)) [[likely]] {
      return kNotShutdown;
    }
    return ProbeInterpreterShutdownSlow();
  }
  ShutdownVerdict ProbeInterpreterShutdownSlow();
  // Called on the program's activity (an acquisition): cheap unless a
  // tentative release waits.
  void NoteScriptActivity() {
    if (tentative_count_.load(std::memory_order_relaxed) != 0) {
      ProbeInterpreterShutdown();
    }
  }

  ReachTotals reach_totals();

  // Records a new handle: captures the caller's stack, the time and the
  // thread. A key still present is replaced (counted, not reported). Hook-safe.
  // Inline for a result's common case (the stack and the time given, the
  // thread's young slot free: written there in place, no call); the rest is
  // AcquireSlow's.
  __attribute__((always_inline)) void Acquire(const KindDesc* kind,
                                              uintptr_t key,
                                              const AcquireInfo& info) {
    if (kind != nullptr && kind->family == Family::kResult && key != 0 &&
        kind->index < kMaxKinds && info.acquired_ns != 0 &&
        (info.stack_id != 0 ||
         (stack_depth_ <= 0 &&
          script_reader_.load(std::memory_order_relaxed) == nullptr)) &&
        tentative_count_.load(std::memory_order_relaxed) == 0 &&
        started_.load(std::memory_order_acquire) &&
        kinds_[kind->index].load(std::memory_order_relaxed) != nullptr) {
      if (Record* young = table_.BeginYoungFast(key)) {
        FillRecord(*young, kind, key, info, info.stack_id,
                   info.tid != 0 ? info.tid : CurrentTid(), info.acquired_ns);
        table_.PublishYoung();
        return;
      }
    }
    AcquireSlow(kind, key, info);
  }
  void AcquireSlow(const KindDesc* kind, uintptr_t key,
                   const AcquireInfo& info);
  // A new record, all of it, for Acquire.
  __attribute__((always_inline)) static void FillRecord(
      Record& r, const KindDesc* kind, uintptr_t key, const AcquireInfo& info,
      uint32_t stack_id, uint32_t tid, int64_t acquired_ns) {
    r.key = key;
    r.kind = kind;
    r.acquired_ns = acquired_ns;
    r.active_ns = acquired_ns;
    r.parent = info.parent;
    r.identity = info.identity;
    r.tid = tid;
    r.flags = info.flags & (kPinsParent | kExited | kDetached | kAdopted);
    r.code = info.code;
    r.serial = info.serial;
    r.query_id = info.query_id;
    if (r.flags & kExited) r.active_ns = info.exited_ns;
    r.stack_id = stack_id;
    r.reach = 0;
    r.gap_code = 0;
  }

  // Captures the caller's stack and interns it (0 if stacks are off), for an
  // Acquire made later or on another thread, or for AcquireInfo::stack_id.
  // Inlined, so that a hook capturing through inlined helpers is the only
  // agent frame unwound. Hook-safe.
  __attribute__((always_inline)) uint32_t CaptureStackId() {
    uint32_t id = CaptureNativeStackId();
    if (script_reader_.load(std::memory_order_relaxed) != nullptr) {
      [[unlikely]] id = AddScriptFrames(id);
    }
    return id;
  }
  // The native frames only.
  __attribute__((always_inline)) uint32_t CaptureNativeStackId() {
    if (stack_depth_ <= 0) return 0;
    EnsureStarted();
    uintptr_t frames[kMaxFrames];
    int n = CaptureStack(frames, stack_depth_);
    return stacks_.Put(frames, static_cast<uint32_t>(n));
  }

  // A script interpreter's reader of frames (tracker/script_stack.h): from
  // now on, stacks captured on a thread running a script carry its frames.
  // Once, as the agent starts; the reader lives for the process.
  void SetScriptReader(const ScriptReader* reader);
  const ScriptReader* script_reader() const {
    return script_reader_.load(std::memory_order_acquire);
  }
  // The stack `native_id` with the calling thread's script frames in place
  // of the interpreter's own native frames; `native_id` if it runs none.
  uint32_t AddScriptFrames(uint32_t native_id);

  // As CaptureStackId, for a hook whose return address is stored at
  // `anchor` (LW_HOOK_ANCHOR; 0 = unknown): through a per-thread cache of
  // stacks by call site that checks a stack by reading the return addresses
  // where the cached stack found them (one load and compare per frame)
  // instead of unwinding. A miss unwinds with libunwind's cursor, which also
  // says where each return address is stored. Hook-safe.
  uint32_t CaptureStackIdAt(uintptr_t anchor) {
    uint32_t id = CaptureNativeStackIdAt(anchor);
    if (script_reader_.load(std::memory_order_relaxed) != nullptr) {
      [[unlikely]] id = AddScriptFrames(id);
    }
    return id;
  }
  uint32_t CaptureNativeStackIdAt(uintptr_t anchor);

  // Forgets a handle; returns false if it was not tracked. If it had been
  // reported live, a note is queued for the watchdog. The record is kept
  // among the recently released with `release_stack_id` (from
  // CaptureReleaseStack), to explain a later misuse. Hook-safe.
  // `tentative` (ShutdownVerdict kShutdownIfLast): kept as still held until
  // the program does something more (then it was a release, noted late) or
  // the exit point comes first (then it was the interpreter's).
  bool Release(uintptr_t key, uint32_t release_stack_id = 0,
               bool tentative = false);

  // The release's stack, LEAKWATCH_RELEASE_STACK_DEPTH frames: releases are
  // as frequent as acquisitions, so by default only `caller` (the return
  // address of the hooked release call: the program's call site), which
  // costs no unwinding. Hook-safe.
  // Inline: a site this thread's cache has is one lookup; the rest is
  // CaptureReleaseStackSlow's.
  __attribute__((always_inline)) uint32_t CaptureReleaseStack(
      const void* caller) {
    const uintptr_t site = reinterpret_cast<uintptr_t>(caller);
    unsigned char* block = thread_block_internal::t_block;
    if (release_stack_depth_ == 1 && site != 0 && block != nullptr) {
      const ReleaseSiteEntry& entry = ReleaseSiteFor(block, site);
      if (entry.site == site) return entry.id;
    }
    return CaptureReleaseStackSlow(caller);
  }
  uint32_t CaptureReleaseStackSlow(const void* caller);

  // Release's common case, for a hook: `key` is the calling thread's young
  // record (ShardedTable::BeginYoung) and no interpreter shutdown is to be
  // asked about. Inline, no lock, errno left alone; false (nothing done):
  // the caller takes Release's way, with the release stack if it was
  // captured here (`*release_stack`, else left kStackNotCaptured).
  static constexpr uint32_t kStackNotCaptured = UINT32_MAX;
  __attribute__((always_inline)) bool ReleaseYoung(uintptr_t key,
                                                   const void* caller,
                                                   uint32_t* release_stack) {
    if (shutdown_probe_.load(std::memory_order_relaxed) != nullptr ||
        shutdown_begun_.load(std::memory_order_relaxed) ||
        tentative_count_.load(std::memory_order_relaxed) != 0) {
      return false;
    }
    *release_stack = CaptureReleaseStack(caller);
    uint16_t flags = 0;
    const KindDesc* kind = nullptr;
    if (!table_.ReleaseOwnYoung(key, *release_stack, CurrentTid(), NowNs(),
                                &flags, &kind)) {
      return false;
    }
    if (tracker_internal::Disguise(key) == tracker_internal::t_touched_key) {
      tracker_internal::t_touched_key = 0;
    }
    if ((flags & kAdopted) && kind != nullptr) [[unlikely]] {
      adopted_released_[kind->index].fetch_add(1, std::memory_order_relaxed);
    }
    return true;
  }

  // The misuse path, for a hook whose release (or use) found no live record:
  // if `key` was released recently as a `kind`, the misuse is reported to the
  // sink now, synchronously; otherwise an unknown release is counted. Returns
  // true if a misuse was reported.
  bool CheckReleaseMisuse(uintptr_t key, const KindDesc* kind,
                          const char* function);
  bool CheckUseMisuse(uintptr_t key, const KindDesc* kind,
                      const char* function);
  uint64_t misuse_count() const {
    return misuses_.load(std::memory_order_relaxed);
  }
  uint64_t unknown_releases() const {
    return unknown_releases_.load(std::memory_order_relaxed);
  }

  // Touch(key, nullptr) for activity with nothing else to record, skipped
  // when this thread recorded activity on `key` within the current tick of
  // the coarse clock and has begun no call since (PQconsumeInput in an event
  // loop: many calls a millisecond). Then returns true without looking, so a
  // use after close by another thread within that tick goes unnoticed.
  // Hook-safe.
  __attribute__((always_inline)) bool TouchActivity(uintptr_t key) {
    // At the same reading of the clock a second Touch would store the same
    // time, and nothing else it does can be pending: no call was begun on
    // the record (BeginCall clears the memo; a call noted in the thread's
    // slot by BeginCallInHook ends here), and the watchdog cannot have
    // found the handle idle at the time it was last active.
    const int64_t now = NowNs();
    if (key != 0 &&
        tracker_internal::Disguise(key) == tracker_internal::t_touched_key &&
        now == tracker_internal::t_touched_ns) {
      tracker_internal::EndCallInHook(key);
      return true;
    }
    return TouchAt(now, key, nullptr, nullptr, nullptr, 0);
  }

  // Marks activity on a handle (connections: resets idle time) and ends a
  // call begun with BeginCall. Stores its identity in `*identity`, its
  // parent in `*parent` and its query in `*query_id` where non-null (before
  // `set_query_id`, if nonzero, becomes its query). Returns false if not
  // tracked. Hook-safe.
  __attribute__((always_inline)) bool Touch(uintptr_t key, Identity* identity,
                                            uintptr_t* parent = nullptr,
                                            uint32_t* query_id = nullptr,
                                            uint32_t set_query_id = 0) {
    return TouchAt(NowNs(), key, identity, parent, query_id, set_query_id);
  }
  // Touch with the time (NowNs()) read by the caller.
  // The common case is inline, lock-free and leaves errno alone (a hook
  // calls it without saving errno); so does the rest.
  __attribute__((always_inline)) bool TouchAt(int64_t now, uintptr_t key,
                                              Identity* identity,
                                              uintptr_t* parent,
                                              uint32_t* query_id,
                                              uint32_t set_query_id) {
    namespace ti = tracker_internal;
    if (key == 0) return false;
    // Nothing to read, and what this thread stored at this reading of the
    // clock is still there (TouchActivity's reasoning, and the same query).
    if (identity == nullptr && parent == nullptr && query_id == nullptr &&
        ti::Disguise(key) == ti::t_touched_key && now == ti::t_touched_ns &&
        (set_query_id == 0 || set_query_id == ti::t_touched_query)) {
      ti::EndCallInHook(key);
      return true;
    }
    Record* r = UseLockFree(key, now);
    if (r == nullptr) [[unlikely]] {
      const bool found =
          TouchSlow(now, key, identity, parent, query_id, set_query_id);
      ti::EndCallInHook(key);
      return found;
    }
    ti::EndUse(*r, set_query_id);
    ti::ReadUse(*r, identity, parent, query_id);
    ti::t_touched_key = ti::Disguise(key);
    ti::t_touched_ns = now;
    ti::t_touched_query = set_query_id != 0
                              ? set_query_id
                              : __atomic_load_n(&r->query_id, __ATOMIC_RELAXED);
    // After the record's activity: the watchdog that sees the call over
    // sees the time it ended.
    ti::EndCallInHook(key);
    return true;
  }

  // Marks the start of a blocking call on a handle (a query that may run for
  // longer than the threshold): until the next Touch the handle is in use, not
  // idle. Returns false if not tracked. Hook-safe.
  __attribute__((always_inline)) bool BeginCall(uintptr_t key) {
    return BeginCallAt(NowNs(), key);
  }
  // BeginCall for a call that ends within the same hook, whose Touch after
  // the real call ends it. If this thread marked `key` active at this
  // reading of the clock (the memo: tracked, active now), the call is only
  // noted in the thread's young slot, where the watchdog reads it as the
  // record's kInCall (ShardedTable::KeysInCall): no record is looked up or
  // changed. Otherwise, or for a thread with no slot, BeginCall.
  __attribute__((always_inline)) bool BeginCallInHook(uintptr_t key) {
    namespace ti = tracker_internal;
    const int64_t now = NowNs();
    young_internal::YoungSlot* y = ShardedTable::OwnSlot();
    if (y != nullptr && key != 0 && ti::Disguise(key) == ti::t_touched_key &&
        now == ti::t_touched_ns) {
      y->in_call.store(key, std::memory_order_release);
      return true;
    }
    return BeginCallAt(now, key);
  }
  __attribute__((always_inline)) bool BeginCallAt(int64_t now, uintptr_t key) {
    if (key == 0) return false;
    tracker_internal::t_touched_key = 0;
    Record* r = UseLockFree(key, now);
    if (r == nullptr) [[unlikely]] {
      return BeginCallSlow(key, now);
    }
    if (!(LoadFlags(*r) & kInCall)) SetFlags(*r, kInCall);
    return true;
  }

  // Threads. A thread's record lives from its creation until it is joined,
  // or, if detached, until it exits; all hook-safe, false if not tracked.
  // MarkExited/MarkDetached release the record when both have happened.
  bool MarkExited(uintptr_t key, int64_t now_ns);
  bool MarkDetached(uintptr_t key);
  // Sets Identity::detail of a tracked handle (a thread's kernel tid).
  bool SetDetail(uintptr_t key, uint32_t detail);
  // Record::serial of a tracked handle.
  bool GetSerial(uintptr_t key, uint32_t* serial);
  // Release only if the record's serial is still `serial` (a thread joined:
  // its pthread_t may already belong to a new thread). Hook-safe.
  bool ReleaseIfSerial(uintptr_t key, uint32_t serial);
  // Release only if the record is of an exited thread (a join whose record
  // was not known before the join). Hook-safe.
  bool ReleaseIfExited(uintptr_t key);

  // The program keeps this handle on purpose (leakwatch_ignore): it is never
  // reported, live or at exit. False if not tracked. Hook-safe.
  bool Ignore(uintptr_t key);

  // Releases every handle of `kind` whose parent is `parent` (a
  // connection's server-side statements, when the session drops them all);
  // returns how many. Visits the whole table: for rare calls only.
  // Hook-safe (allocates nothing).
  size_t ReleaseChildren(const KindDesc* kind, uintptr_t parent);

  // Sets the identity of a tracked handle; false if not tracked. Hook-safe.
  bool SetIdentity(uintptr_t key, const Identity& identity);

  // Interns a string (an identity) and returns its id. Hook-safe.
  uint32_t InternString(std::string_view s);

  // Interns a query text (already masked or cut by the caller). Once
  // kMaxQueries distinct texts are kept, new ones get 0 ("not kept"), so
  // programs that send endless distinct literals cannot grow the depot
  // without bound. Hook-safe.
  static constexpr uint32_t kMaxQueries = 20000;
  uint32_t InternQuery(std::string_view text);

  Depot<uintptr_t>& stacks() { return stacks_; }
  Depot<char>& strings() { return strings_; }
  ShardedTable& table() { return table_; }

  // The report module registers itself once at start-up.
  void SetSink(EventSink* sink) {
    sink_.store(sink, std::memory_order_release);
  }

  // Runs one watchdog scan now (the watchdog thread calls this; tests too).
  // One scan at a time: a call while another runs does nothing (the
  // reachability pass's buffers are the scan's own).
  void Scan();

  // Passes what is held past its threshold now to the sink (OnPeriodic).
  // The watchdog calls it every LEAKWATCH_REPORT_INTERVAL; tests too.
  void PeriodicReport();

  // Writes the exit report through the sink, once; later calls do nothing.
  // Takes locks with a deadline. Called from the agent's ELF destructor.
  //
  // The report is written by the watchdog thread, while the exiting thread
  // waits without allocating: exit() is often called from a signal handler
  // that may have interrupted this very thread inside malloc, and the report
  // allocates (malloc on that thread could corrupt glibc's tcache and crash
  // the host). If the watchdog makes no
  // progress for kExitStallMs (it may wait for a malloc arena lock that the
  // interrupted thread holds), the report is abandoned with one line.
  void Exit();
  static constexpr int64_t kExitStallMs = 10000;
  // How long ExitPoint waits for the exit scan, and how long the scan may
  // take (then its verdicts are unknown: every handle counts, as without
  // reachability).
  static constexpr int64_t kExitReachWaitMs = 5000;
  static constexpr int64_t kExitReachScanMs = 4000;

  // The sink calls this as it writes the exit report (per stack frame), so
  // that a long but progressing report is waited for. Hook-safe.
  void NoteExitProgress() {
    exit_progress_.fetch_add(1, std::memory_order_relaxed);
  }

  // Passes a line the agent says about itself to the report module.
  void Notice(std::string_view what, std::string_view text) {
    if (EventSink* sink = sink_.load(std::memory_order_acquire)) {
      sink->OnNotice(what, text);
    }
  }

  // Kernel id of the calling thread (cached per thread). Hook-safe.
  static uint32_t CurrentTid() {
    uint32_t tid = tracker_internal::t_tid;
    return tid != 0 ? tid : CurrentTidSlow();
  }
  static uint32_t CurrentTidSlow();

 private:
  Tracker();
  static Tracker& Create();
  static std::atomic<Tracker*> instance_;

  struct ScanPass;
  struct ConnSites;
  struct SiteAggregate;
  using SiteMap = ScrubbedHashMap<uint64_t, SiteAggregate>;
  // Of `sites` (by SiteKey: kind and stack), those growing by `family`'s
  // rule (IsGrowing) for the first time, or again with at least twice the
  // count of their last warning, go to `growing`. Takes scan_mu_.
  void WarnGrowingSites(Family family, const SiteMap& sites,
                        ScrubbedVector<SiteGrowth>* growing);
  // Reachability: decides verdicts for the handles a live scan (or, at
  // exit, every handle) needs and stores them in their records.
  void ReachPass(bool at_exit);
  bool WantsReach(const Record& r, int64_t now_ns, bool at_exit) const;
  // Past its threshold with no verdict yet while live scans run: its
  // warning waits for the next scan (which says whether it is lost).
  bool AwaitsVerdict(const Record& r, int64_t now_ns) const;
  // The agent's writable segments, which the scans must not read (once, on
  // the watchdog thread as it starts).
  static void FindAgentMemory();
  // Phase 1's judgement of a record that is not a connection (a lives-with-
  // parent one waits for phase 2): metrics, growing thread sites, and the
  // candidates for a warning. In a script interpreter, a result from a
  // connection within its rule is not held too long.
  void JudgeCollected(const Record& r, bool has_parent, ScanPass* pass);
  // In a script interpreter, the results from a connection, once the
  // connections are judged.
  void JudgeResults(ScanPass* pass);
  // The connections of `pass` judged with their sites; growing sites.
  void JudgeConnections(ScanPass* pass, ScrubbedVector<SiteGrowth>* growing);
  // Activity on a record (Touch, BeginCall): learns reuse after a gap. On
  // every hook's path: the common case (a short gap, not lost) is a compare
  // and two stores, the rest is NoteReuse.
  void MarkActive(Record& r, int64_t now_ns) const {
    const int64_t gap = now_ns - r.active_ns;
    if (gap >= reuse_gap_floor_ns_) [[unlikely]] {
      NoteReuse(r, gap);
    }
    __atomic_store_n(&r.active_ns, now_ns, __ATOMIC_RELAXED);
    // In use: whatever a scan said, somebody still has it (kLost and
    // kIndirectlyLost are the two largest verdicts).
    if (r.reach >= static_cast<uint8_t>(Reach::kLost)) [[unlikely]] {
      r.reach = static_cast<uint8_t>(Reach::kUnknown);
    }
  }
  void NoteReuse(Record& r, int64_t gap_ns) const;
  // MarkActive without the record's lock, if nothing but the time changes
  // (no gap to learn, no note, no verdict to reset): true, else false and
  // nothing done.
  __attribute__((always_inline)) bool MarkActiveLockFree(Record& r,
                                                         int64_t now) const {
    // What needs the lock goes the locked way: a note to write (reported
    // live), a reuse to learn (a gap), a verdict to reset (lost).
    if ((LoadFlags(r) & kReportedLive) ||
        __atomic_load_n(&r.reach, __ATOMIC_RELAXED) >=
            static_cast<uint8_t>(Reach::kLost) ||
        now - __atomic_load_n(&r.active_ns, __ATOMIC_RELAXED) >=
            reuse_gap_floor_ns_) {
      return false;
    }
    __atomic_store_n(&r.active_ns, now, __ATOMIC_RELAXED);
    return true;
  }
  // The record of `key` marked active at `now` without its lock (this
  // thread's cache of records, MarkActiveLockFree), or null: the caller
  // takes the locked way.
  __attribute__((always_inline)) Record* UseLockFree(uintptr_t key,
                                                     int64_t now) {
    // A record this thread used before, with no shutdown, no tentative
    // release, nothing that needs the lock: no lock. Another thread's
    // activity on the same record at the same time is another store of the
    // same kind; the watchdog's verdicts are atomic changes of the flags.
    if (tentative_count_.load(std::memory_order_relaxed) != 0 ||
        shutdown_begun_.load(std::memory_order_relaxed)) {
      return nullptr;
    }
    Record* hot = tracker_internal::HotRecord(key);
    return hot != nullptr && MarkActiveLockFree(*hot, now) ? hot : nullptr;
  }
  // TouchAt and BeginCall when UseLockFree could not (out of line: the fast
  // path keeps a small frame).
  __attribute__((noinline)) bool TouchSlow(int64_t now, uintptr_t key,
                                           Identity* identity,
                                           uintptr_t* parent,
                                           uint32_t* query_id,
                                           uint32_t set_query_id);
  __attribute__((noinline)) bool BeginCallSlow(uintptr_t key, int64_t now);
  // False if activity on `r` is not use: the interpreter is shutting down
  // (`verdict`, once `asked`), or, unless `asked`, the probe is to be asked
  // first (`*probe` set): `r` was reported idle, or a tentative release
  // waits.
  bool ShouldUse(const Record& r, bool asked, ShutdownVerdict verdict,
                 bool* probe) const;
  // Activity on `key` at `now`: runs `fn(Record&, bool use)` under the
  // record's lock, with `use` from ShouldUse (asking the shutdown probe
  // outside the lock when it must); on use the record was marked active, its
  // "in use again" note taken first. Returns whether the key is tracked.
  template <typename Fn>
  bool UseRecord(uintptr_t key, int64_t now, Fn&& fn);
  static bool TakeReportedIdle(Record& r, Record* reported);
  // Stack capture and watchdog, on first acquire.
  void EnsureStarted() {
    if (!started_.load(std::memory_order_acquire)) [[unlikely]] {
      StartOnce();
    }
  }
  void StartOnce();
  // The parts of Scan: phase 1 (per record, under its shard lock), phase 2
  // (the candidates, one lock at a time), growth, metrics.
  void CollectForScan(const Record& r, ScanPass* pass);
  void MarkOverdue(ScanPass* pass, ScanEvents* events);
  void FindGrowingSites(const ScanPass& pass,
                        ScrubbedVector<SiteGrowth>* growing);
  void FillMetrics(ScanPass* pass);
  // Fills `snapshot` with the records to report: at exit everything held
  // (threads: exited-unjoined and growing sites); with `past_threshold_only`
  // only what is past its threshold now. With `sample_for`, also the
  // sample that sink asks for (ExitSnapshot::sample).
  void TakeSnapshot(ExitSnapshot* snapshot, bool past_threshold_only,
                    int64_t lock_deadline_ns,
                    const EventSink* sample_for = nullptr);
  void StartWatchdog();
  static void* WatchdogMain(void* arg);
  void WriteExitReport();  // the exit report, on the calling thread
  // The watchdog's sleep: until the CLOCK_MONOTONIC time `until` (null: no
  // limit) — true — or an exit request — false.
  bool WaitUntil(const struct timespec* until);
  void QueueNote(LiveNote::Type type, const Record& record, int64_t at_ns);
  // After a record left the table: a note if it had been reported live.
  void OnRemoved(const Record& removed);
  // Whether a site with `count` running threads (idle, never reused
  // connections or statements) older than the threshold, created over
  // `span_ns`, is growing (not a pool).
  bool IsGrowing(Family family, uint32_t count, int64_t span_ns) const;
  ScrubbedVector<LiveNote> TakeNotes(uint64_t* dropped);

  static void ForkPrepare();
  static void ForkParent();
  static void ForkChild();

  // Sets options_ and what is derived from it (track_ is the caller's).
  void Configure(const Options& options);
  // A snapshot of what is held past its threshold now, to `deliver`.
  void ReportHeldNow(void (EventSink::*deliver)(const ExitSnapshot&));

  Options options_;
  std::atomic<uint32_t> track_{0};      // options_.track, 0 while inert
  std::atomic<int64_t> session_ns_{0};  // NowNs() the session began; 0: none
  ShardedTable::Totals session_base_;   // totals as the session began
  // Connections adopted in the session, and releases of them, per kind.
  std::atomic<uint64_t> adopted_[kMaxKinds] = {};
  std::atomic<uint64_t> adopted_released_[kMaxKinds] = {};
  std::atomic<bool> stop_watchdog_{false};
  std::atomic<void (*)()> scan_hook_{nullptr};
  int64_t threshold_ns_[kNumFamilies] = {};
  // The shortest gap after which MarkActive can see a reuse: half the
  // smallest threshold of the families that learn reuse (conn, stmt).
  int64_t reuse_gap_floor_ns_ = INT64_MAX;
  int stack_depth_ = 0;
  int release_stack_depth_ = 0;

  // In constant-initialized storage of their own (tracker.cc), not in the
  // Tracker: about 500 KiB that would otherwise all be written (zeros) by
  // the Tracker's constructor and stay resident; untouched, a page of them
  // costs nothing until a shard or bucket on it is first used.
  ShardedTable& table_;
  Depot<uintptr_t>& stacks_;
  Depot<char>& strings_;
  std::atomic<uint32_t> queries_kept_{0};
  std::atomic<uint64_t> misuses_{0};
  std::atomic<uint64_t> unknown_releases_{0};
  std::atomic<const KindDesc*> kinds_[kMaxKinds] = {};
  std::atomic<EventSink*> sink_{nullptr};

  std::atomic<bool> started_{false};
  pthread_mutex_t start_mu_ = PTHREAD_MUTEX_INITIALIZER;
  std::atomic<bool> exiting_{false};
  std::atomic<bool> exit_done_{false};
  // Exit handoff (futex word): kExitNone, kExitRequested, kExitWritten.
  enum : uint32_t { kExitNone = 0, kExitRequested = 1, kExitWritten = 2 };
  std::atomic<uint32_t> exit_state_{kExitNone};
  std::atomic<uint64_t> exit_progress_{0};
  std::atomic<bool> watchdog_running_{false};
  pthread_t watchdog_thread_{};

  // Live-warning totals and peaks per kind, for metrics.
  std::atomic<uint64_t> reported_total_[kMaxKinds] = {};
  uint64_t peak_open_[kMaxKinds] = {};  // guarded by scan_mu_

  pthread_mutex_t scan_mu_ = PTHREAD_MUTEX_INITIALIZER;
  // Growing sites' counts at their last warning, by SiteKey (kind and
  // stack). Guarded by scan_mu_.
  std::unordered_map<uint64_t, uint32_t> site_warned_;
  // Connection sites' longest reuse gap ever seen, by SiteKey.
  std::unordered_map<uint64_t, int64_t> site_gap_;

  // Reachability scans (watchdog only, except the exit handoff).
  int64_t next_reach_ns_ = 0;  // no live scan before this NowNs()
  bool reach_failed_ = false;  // a scan could not be made: no more live ones
  ShardLock reach_mu_;         // guards reach_totals_
  ReachTotals reach_totals_;
  // Exit-point handoff (futex word): kReachNone, kReachRequested, kReachDone.
  enum : uint32_t { kReachNone = 0, kReachRequested = 1, kReachDone = 2 };
  std::atomic<uint32_t> exit_reach_state_{kReachNone};
  std::atomic<bool> exit_point_done_{false};
  pthread_mutex_t scan_run_mu_ = PTHREAD_MUTEX_INITIALIZER;  // held by Scan
  std::atomic<bool> shutdown_begun_{false};
  std::atomic<ShutdownProbe> shutdown_probe_{nullptr};
  std::atomic<const ScriptReader*> script_reader_{nullptr};
  // The code of the interpreter's own module (the object with its eval
  // loop): its native frames give way to script frames.
  uintptr_t script_module_lo_ = 0, script_module_hi_ = 0;
  // The reader's eval-loop ranges in use (a copy, so that the hook loops
  // over only these).
  int script_evals_ = 0;
  uintptr_t script_eval_lo_[kMaxEvalRanges] = {},
            script_eval_hi_[kMaxEvalRanges] = {};
  bool InScriptEvalLoop(uintptr_t pc) const {
    for (int i = 0; i < script_evals_; ++i) {
      if (pc - script_eval_lo_[i] < script_eval_hi_[i] - script_eval_lo_[i]) {
        return true;
      }
    }
    return false;
  }
  // Handles released by the interpreter's shutdown, as they were: still held,
  // for the exit report; and the tentative releases waiting (guarded by
  // shutdown_mu_).
  pthread_mutex_t shutdown_mu_ = PTHREAD_MUTEX_INITIALIZER;
  ScrubbedVector<Record> shutdown_released_;
  ScrubbedVector<Record> tentative_released_;
  std::atomic<uint32_t> tentative_count_{0};
  // The tentative releases: were the script's (their notes are made now) or
  // the interpreter's.
  void ConfirmTentative();
  void PromoteTentative();
  // True if `r`, released by the interpreter, came from a parent the script
  // released itself: the driver kept it until its object died (a closed
  // connection's last result, psycopg2's cancel handle), a release like any
  // other.
  bool KeptPastClosedParent(const Record& r);
  uintptr_t exit_stack_lo_ = 0, exit_stack_hi_ = 0;  // not scanned at exit
  // The watchdog's own stack: its frames hold the agent's copies of keys.
  uintptr_t watchdog_stack_lo_ = 0, watchdog_stack_hi_ = 0;

  // Notes for the watchdog about reported handles; bounded.
  static constexpr size_t kMaxNotes = 4096;
  ShardLock notes_mu_;
  ScrubbedVector<LiveNote> notes_;  // guarded by notes_mu_
  uint64_t notes_dropped_ = 0;      // guarded by notes_mu_
};

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_TRACKER_H_
