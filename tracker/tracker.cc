#include "tracker/tracker.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <new>
#include <optional>
#include <unordered_map>

#include "tracker/clock.h"
#include "tracker/reach.h"
#include "tracker/stack.h"
#include "tracker/thread_block.h"

namespace leakwatch {
namespace {

// Storage for the one Tracker: constructed in place, never destroyed.
alignas(Tracker) unsigned char g_storage[sizeof(Tracker)];

// The Tracker's table and depots, built at compile time (constinit: no
// constructor runs, nothing is written before use) and never destroyed.
template <typename T>
union Static {
  constexpr Static() : value() {}
  ~Static() {}
  T value;
};
constinit Static<ShardedTable> g_table;
constinit Static<Depot<uintptr_t>> g_stacks;
constinit Static<Depot<char>> g_strings;
Tracker* g_tracker = nullptr;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

void WriteStderr(const std::string& line) {
  std::string s = line + "\n";
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

namespace tracker_internal {

__attribute__((tls_model("initial-exec"))) __thread HotEntry t_hot[kHotEntries];
__attribute__((tls_model("initial-exec"))) __thread uintptr_t t_touched_key = 0;
__attribute__((tls_model("initial-exec"))) __thread int64_t t_touched_ns = 0;
__attribute__((tls_model("initial-exec"))) __thread uint32_t t_touched_query =
    0;
// Plain data, initial-exec: safe to touch from a hook in a preloaded object.
__attribute__((tls_model("initial-exec"))) __thread uint32_t t_tid = 0;

}  // namespace tracker_internal

namespace {

using tracker_internal::Disguise;
using tracker_internal::HotRecord;
using tracker_internal::HotSlot;
using tracker_internal::t_touched_key;
using tracker_internal::t_touched_ns;
using tracker_internal::t_touched_query;

inline void RememberHot(uintptr_t key, Record* r) {
  tracker_internal::HotEntry& e = HotSlot(key);
  RewriteCacheEntry(e.disguised_key, Disguise(key), [&] { e.record = r; });
}

inline void ForgetHot(uintptr_t key) {
  tracker_internal::HotEntry& e = HotSlot(key);
  if (e.disguised_key == Disguise(key)) e.disguised_key = 0;
}

}  // namespace

std::atomic<Tracker*> Tracker::instance_{nullptr};

Tracker& Tracker::Create() {
  // Errno is kept: the hooks' inline paths call Get() without saving it.
  const int saved_errno = errno;
  pthread_once(&g_once, [] {
    g_tracker = new (g_storage) Tracker();
    pthread_atfork(&Tracker::ForkPrepare, &Tracker::ForkParent,
                   &Tracker::ForkChild);
    instance_.store(g_tracker, std::memory_order_release);
  });
  errno = saved_errno;
  return *g_tracker;
}

namespace {
void FutexWakeAll(std::atomic<uint32_t>* word);
// UseOptions: the options of a tracker created by `leakwatch attach`.
alignas(Options) unsigned char g_given_options_storage[sizeof(Options)];
const Options* g_given_options = nullptr;
}  // namespace

void Tracker::UseOptions(const Options& options) {
  if (g_given_options == nullptr) {
    g_given_options = new (g_given_options_storage) Options(options);
  }
}

Tracker::Tracker()
    : table_(g_table.value),
      stacks_(g_stacks.value),
      strings_(g_strings.value) {
  int saved_errno = errno;
  table_.EnableYoung();
  if (g_given_options != nullptr) {
    Configure(*g_given_options);  // tracking nothing until BeginSession
  } else {
    std::vector<std::string> errors;
    Configure(
        ParseOptions([](const char* name) { return getenv(name); }, &errors));
    for (const std::string& e : errors) WriteStderr(e);
    track_.store(options_.track, std::memory_order_relaxed);
  }
  notes_.reserve(64);
  errno = saved_errno;
}

void Tracker::Configure(const Options& options) {
  options_ = options;
  reuse_gap_floor_ns_ = INT64_MAX;
  for (int f = 0; f < kNumFamilies; ++f) {
    threshold_ns_[f] = options_.ThresholdMs(static_cast<Family>(f)) * 1000000;
  }
  for (Family f : {Family::kConn, Family::kStmt}) {
    const int64_t t = threshold_ns_[static_cast<int>(f)];
    if (t > 0) reuse_gap_floor_ns_ = std::min(reuse_gap_floor_ns_, t / 2);
  }
  stack_depth_ = static_cast<int>(options_.stack_depth);
  release_stack_depth_ = static_cast<int>(options_.release_stack_depth);
}

void Tracker::BeginSession(const Options& options, void (*configured)()) {
  pthread_mutex_lock(&start_mu_);
  Configure(options);
  table_.Clear();
  notes_mu_.Lock();
  notes_.clear();
  notes_dropped_ = 0;
  notes_mu_.Unlock();
  pthread_mutex_lock(&scan_mu_);
  site_warned_.clear();
  site_gap_.clear();
  pthread_mutex_unlock(&scan_mu_);
  session_base_ = table_.GetTotals();
  for (int k = 0; k < kMaxKinds; ++k) {
    adopted_[k].store(0, std::memory_order_relaxed);
    adopted_released_[k].store(0, std::memory_order_relaxed);
  }
  stop_watchdog_.store(false, std::memory_order_relaxed);
  pthread_mutex_unlock(&start_mu_);
  if (configured != nullptr) configured();
  session_ns_.store(NowNs(), std::memory_order_release);
  track_.store(options_.track, std::memory_order_release);
  EnsureStarted();
}

bool Tracker::EndSession(int64_t wait_ms) {
  track_.store(0, std::memory_order_release);
  session_ns_.store(0, std::memory_order_release);
  if (!watchdog_running_.load(std::memory_order_acquire)) {
    started_.store(false, std::memory_order_release);
    return true;
  }
  stop_watchdog_.store(true, std::memory_order_release);
  FutexWakeAll(&exit_state_);
  const int64_t give_up = NowNs() + wait_ms * 1000000;
  while (watchdog_running_.load(std::memory_order_acquire)) {
    if (NowNs() > give_up) return false;
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, nullptr);
  }
  return true;
}

ShardedTable::Totals Tracker::Totals() {
  ShardedTable::Totals totals = table_.GetTotals();
  if (!InSession()) return totals;
  // Adopted handles were acquired before the session: counted apart, with
  // their releases.
  for (int k = 0; k < kMaxKinds; ++k) {
    totals.adopted[k] = adopted_[k].load(std::memory_order_relaxed);
    const uint64_t adopted_released =
        adopted_released_[k].load(std::memory_order_relaxed);
    totals.acquired[k] -= session_base_.acquired[k] + totals.adopted[k];
    totals.released[k] -= session_base_.released[k] + adopted_released;
    totals.replaced[k] -= session_base_.replaced[k];
  }
  return totals;
}

bool Tracker::Adopt(const KindDesc* kind, uintptr_t key, AcquireInfo info) {
  if (!InSession()) return false;
  info.flags |= kAdopted;
  Acquire(kind, key, info);
  // Held since the session began at least (set here, off Acquire's path).
  const int64_t began = session_ns_.load(std::memory_order_relaxed);
  table_.Update(key, [began](Record& r) {
    if (r.flags & kAdopted) r.acquired_ns = began;
  });
  adopted_[kind->index].fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Tracker::DemandReport() { ReportHeldNow(&EventSink::OnDemand); }

uint32_t Tracker::CurrentTidSlow() {
  using tracker_internal::t_tid;
  if (t_tid == 0) t_tid = static_cast<uint32_t>(syscall(SYS_gettid));
  return t_tid;
}

void Tracker::StartOnce() {
  pthread_mutex_lock(&start_mu_);
  if (!started_.load(std::memory_order_relaxed)) {
    if (stack_depth_ > 0 || release_stack_depth_ > 1) InitStackCapture();
    StartWatchdog();
    started_.store(true, std::memory_order_release);
  }
  pthread_mutex_unlock(&start_mu_);
}

void Tracker::AcquireSlow(const KindDesc* kind, uintptr_t key,
                          const AcquireInfo& info) {
  if (key == 0 || kind == nullptr || kind->index >= kMaxKinds) return;
  NoteScriptActivity();
  EnsureStarted();
  if (kinds_[kind->index].load(std::memory_order_relaxed) == nullptr) {
    kinds_[kind->index].store(kind, std::memory_order_relaxed);
  }
  const uint32_t stack_id =
      info.stack_id != 0 ? info.stack_id : CaptureStackId();
  const uint32_t tid = info.tid != 0 ? info.tid : CurrentTid();
  const int64_t acquired_ns =
      info.acquired_ns != 0 ? info.acquired_ns : NowNs();
  // Results are mostly released by the thread that got them before it
  // gets the next: young (see ShardedTable::BeginYoung), written in place.
  Record* young =
      kind->family == Family::kResult ? table_.BeginYoung(key) : nullptr;
  Record local;
  Record& r = young != nullptr ? *young : local;
  FillRecord(r, kind, key, info, stack_id, tid, acquired_ns);
  if (young != nullptr) {
    table_.PublishYoung();
    return;
  }
  // A thread's pthread_t is reused only once the old thread was joined (or
  // detached and exited): an old record still there is one whose join is on
  // its way (the joiner removes it after the real join returns).
  if (kind->family != Family::kThread) {
    table_.Insert(r, nullptr);
    return;
  }
  Record replaced;
  if (table_.Insert(r, &replaced, /*replace_is_release=*/true)) {
    OnRemoved(replaced);
  }
}

void Tracker::OnRemoved(const Record& removed) {
  if ((removed.flags & kReportedLive) && !(removed.flags & kInherited)) {
    QueueNote(LiveNote::kReleased, removed, NowNs());
  }
}

namespace {

// Per-thread stacks by call site, for CaptureStackIdAt.
constexpr int kCachedStackDepth = 24;  // deeper settings bypass the cache
constexpr int kCachedStacks = 16;
struct CachedStack {
  uintptr_t return_address;  // frame 0; 0 = empty
  uint32_t stack_id;
  uint32_t frames;
  uint32_t offsets[kCachedStackDepth];  // slot of frame i, above the anchor
};
static_assert(sizeof(CachedStack) * kCachedStacks <= kStackCacheBytes);

}  // namespace

uint32_t Tracker::CaptureNativeStackIdAt(uintptr_t anchor) {
  if (stack_depth_ <= 0) return 0;
  uintptr_t lo, hi;
  if (anchor == 0 || stack_depth_ > kCachedStackDepth ||
      !CurrentStackBounds(&lo, &hi) || anchor < lo ||
      anchor + sizeof(uintptr_t) > hi) {
    return CaptureNativeStackId();
  }
  EnsureStarted();
  unsigned char* block = ThreadBlock();
  if (block == nullptr) return CaptureNativeStackId();
  auto* stacks = reinterpret_cast<CachedStack*>(block + kStackCacheOffset);
  const uintptr_t ret = *reinterpret_cast<const uintptr_t*>(anchor);
  CachedStack& cached = stacks[(ret ^ (ret >> 9)) % kCachedStacks];
  if (cached.return_address == ret) {
    // The same stack if every return address is where it was: the reads
    // stay inside this thread's stack, above the hook's frame.
    // The slots are in increasing order: the last one bounds them all.
    auto same = [&] {
      const Depot<uintptr_t>::View stack = stacks_.Get(cached.stack_id);
      const uint32_t frames = cached.frames;
      if (stack.size != frames || frames == 0 || stack.data[0] != ret ||
          anchor + cached.offsets[frames - 1] + sizeof(uintptr_t) > hi) {
        return false;
      }
      for (uint32_t i = 1; i < frames; ++i) {
        const uintptr_t slot = anchor + cached.offsets[i];
        if (*reinterpret_cast<const uintptr_t*>(slot) != stack.data[i]) {
          return false;
        }
      }
      return true;
    };
    if (same()) return cached.stack_id;
  }
  uintptr_t frames[kCachedStackDepth];
  uint32_t offsets[kCachedStackDepth];
  int n = CaptureStackWithSlots(anchor, frames, offsets, stack_depth_);
  if (n <= 0 || frames[0] != ret) return CaptureNativeStackId();
  uint32_t id = stacks_.Put(frames, static_cast<uint32_t>(n));
  if (id != 0) {
    RewriteCacheEntry(cached.return_address, ret, [&] {
      cached.stack_id = id;
      cached.frames = static_cast<uint32_t>(n);
      std::memcpy(cached.offsets, offsets, sizeof(uint32_t) * n);
    });
  }
  return id;
}

namespace {

// Per-thread descriptions of script frames, for AddScriptFrames: a frame
// seen before (same code, position and check) is its interned string again
// without reading the interpreter's objects.
struct CachedScriptFrame {
  uintptr_t code;  // 0 = empty
  uintptr_t where;
  uintptr_t check;
  uint32_t string_id;
};
// Per-thread stacks with script frames: the native stack's id and a hash of
// the frames walked (64 bits: a collision would need two different walks
// with the same native stack and hash) -> the merged stack's id, so that a
// line seen before costs the walk and the hash, not the merge and the
// depot's lookup.
struct CachedScriptStack {
  uint64_t hash;  // 0 = empty
  uint32_t native_id;
  uint32_t stack_id;
};
constexpr size_t kCachedScriptStacks = 64;
constexpr size_t kCachedScriptFrames =
    (kScriptFrameCacheBytes - kCachedScriptStacks * sizeof(CachedScriptStack)) /
    sizeof(CachedScriptFrame);
static_assert(kCachedScriptFrames * sizeof(CachedScriptFrame) +
                  kCachedScriptStacks * sizeof(CachedScriptStack) <=
              kScriptFrameCacheBytes);
static_assert(sizeof(CachedScriptFrame) % alignof(CachedScriptStack) == 0);

// Appends `s` to [*at, end), cut to fit; never writes the separator.
void AppendCut(char** at, char* end, const char* s) {
  for (; *s != '\0' && *at < end; ++s) *(*at)++ = *s == '\x1f' ? ' ' : *s;
}

}  // namespace

void Tracker::SetScriptReader(const ScriptReader* reader) {
  if (reader == nullptr || reader->walk == nullptr ||
      reader->describe == nullptr) {
    return;
  }
  uintptr_t lo = 0, hi = 0;
  if (reader->eval_lo[0] != 0 &&
      FindCodeRange(reinterpret_cast<const void*>(reader->eval_lo[0]), &lo,
                    &hi)) {
    script_module_lo_ = lo;
    script_module_hi_ = hi;
  }
  for (int i = 0; i < kMaxEvalRanges; ++i) {
    if (reader->eval_hi[i] > reader->eval_lo[i]) {
      script_eval_lo_[script_evals_] = reader->eval_lo[i];
      script_eval_hi_[script_evals_] = reader->eval_hi[i];
      ++script_evals_;
    }
  }
  script_reader_.store(reader, std::memory_order_release);
}

// One script frame as a pseudo return address: the interned description
// "language\x1ffile\x1ffunction\x1fline" (0 if it cannot be read or kept).
static uintptr_t ScriptFramePc(Tracker& tracker, const ScriptReader& reader,
                               const ScriptFrameRef& ref,
                               CachedScriptFrame* cache) {
  CachedScriptFrame* entry = nullptr;
  if (cache != nullptr) {
    uintptr_t h = ref.code ^ (ref.where * 0x9e3779b97f4a7c15ull);
    entry = &cache[(h ^ (h >> 29)) % kCachedScriptFrames];
    if (entry->code == ref.code && entry->where == ref.where &&
        entry->check == ref.check) {
      return kScriptFrameTag | entry->string_id;
    }
  }
  ScriptFrameText text;
  if (!reader.describe(ref, &text)) return 0;
  char buf[sizeof(text.file) + sizeof(text.function) + 48];
  char* at = buf;
  char* end = buf + sizeof(buf) - 16;  // room for the line
  AppendCut(&at, end, reader.language);
  *at++ = '\x1f';
  AppendCut(&at, end, text.file);
  *at++ = '\x1f';
  AppendCut(&at, end, text.function);
  *at++ = '\x1f';
  char digits[12];
  int nd = 0;
  unsigned line = text.line > 0 ? static_cast<unsigned>(text.line) : 0;
  do {
    digits[nd++] = static_cast<char>('0' + line % 10);
    line /= 10;
  } while (line != 0 && nd < 10);
  while (nd > 0) *at++ = digits[--nd];
  uint32_t id = tracker.InternString(
      std::string_view(buf, static_cast<size_t>(at - buf)));
  if (id == 0) return 0;
  if (entry != nullptr) {
    RewriteCacheEntry(entry->code, ref.code, [&] {
      entry->where = ref.where;
      entry->check = ref.check;
      entry->string_id = id;
    });
  }
  return kScriptFrameTag | id;
}

uint32_t Tracker::AddScriptFrames(uint32_t native_id) {
  const ScriptReader* reader = script_reader_.load(std::memory_order_acquire);
  if (reader == nullptr || shutdown_begun_.load(std::memory_order_relaxed)) {
    return native_id;
  }
  const int saved_errno = errno;
  ScriptFrameRef refs[kMaxScriptFrames];
  int n = reader->walk(refs, kMaxScriptFrames);
  if (n <= 0) {
    errno = saved_errno;
    return native_id;
  }
  if (n > kMaxScriptFrames) n = kMaxScriptFrames;
  unsigned char* block = ThreadBlock();
  auto* cache = block == nullptr ? nullptr
                                 : reinterpret_cast<CachedScriptFrame*>(
                                       block + kScriptFrameCacheOffset);
  CachedScriptStack* merged = nullptr;
  uint64_t hash = 0x9e3779b97f4a7c15ull ^ native_id;
  if (block != nullptr) {
    for (int i = 0; i < n; ++i) {
      hash = (hash ^ refs[i].code) * 0x100000001b3ull;
      hash = (hash ^ refs[i].where) * 0x100000001b3ull;
      hash = (hash ^ (refs[i].check + refs[i].boundary)) * 0x100000001b3ull;
      hash ^= hash >> 29;
    }
    hash |= 1;  // never 0 (empty)
    merged = reinterpret_cast<CachedScriptStack*>(cache + kCachedScriptFrames) +
             (hash >> 7) % kCachedScriptStacks;
    if (merged->hash == hash && merged->native_id == native_id) {
      errno = saved_errno;
      return merged->stack_id;
    }
  }
  // The native frames outside the interpreter's own code stay where they
  // are; each eval-loop frame gives way to the script frames it runs (up to
  // the reader's boundary; all of them if it marks none), the interpreter's
  // other native frames go (they vary with its caches, not with the
  // script), and so do the frames outward of the outermost eval loop (the
  // process's or thread's start, cut or not by the depth depending on the
  // path the interpreter took). Script frames no eval-loop frame took come
  // last.
  Depot<uintptr_t>::View native = stacks_.Get(native_id);
  uint32_t outermost_eval = native.size;
  for (uint32_t i = native.size; i-- > 0;) {
    if (InScriptEvalLoop(native.data[i])) {
      outermost_eval = i;
      break;
    }
  }
  uintptr_t out[kMaxFrames];
  int m = 0;
  int next = 0;
  auto emit_script = [&](bool all) {
    while (next < n && m < kMaxFrames) {
      const ScriptFrameRef& ref = refs[next++];
      uintptr_t pc = ScriptFramePc(*this, *reader, ref, cache);
      if (pc != 0) out[m++] = pc;
      if (ref.boundary && !all) break;
    }
  };
  for (uint32_t i = 0; i < native.size && m < kMaxFrames; ++i) {
    const uintptr_t pc = native.data[i];
    if (i == outermost_eval) break;
    if (pc - script_module_lo_ < script_module_hi_ - script_module_lo_) {
      if (InScriptEvalLoop(pc)) emit_script(false);
      continue;
    }
    if (InScriptEvalLoop(pc)) {
      emit_script(false);
      continue;
    }
    out[m++] = pc;
  }
  emit_script(true);
  uint32_t id = stacks_.Put(out, static_cast<uint32_t>(m));
  errno = saved_errno;
  if (id == 0) return native_id;
  if (merged != nullptr) {
    RewriteCacheEntry(merged->hash, hash, [&] {
      merged->native_id = native_id;
      merged->stack_id = id;
    });
  }
  return id;
}

bool Tracker::Release(uintptr_t key, uint32_t release_stack_id,
                      bool tentative) {
  if (key == 0) return false;
  ForgetHot(key);
  if (Disguise(key) == t_touched_key) t_touched_key = 0;
  Record removed;
  if (!table_.EraseAndRemember(key, &removed, release_stack_id, CurrentTid(),
                               NowNs())) {
    return false;
  }
  if (removed.flags & kAdopted) [[unlikely]] {
    adopted_released_[removed.kind->index].fetch_add(1,
                                                     std::memory_order_relaxed);
  }
  const bool shutdown = shutdown_begun_.load(std::memory_order_acquire);
  if ((shutdown || tentative) && removed.kind->family != Family::kThread &&
      !KeptPastClosedParent(removed)) {
    // The script never released it: still held, for the exit report (no
    // "released" note either), or maybe, for a tentative release.
    removed.flags =
        static_cast<uint16_t>((removed.flags | kReleasedAtShutdown) & ~kInCall);
    pthread_mutex_lock(&shutdown_mu_);
    if (shutdown) {
      shutdown_released_.push_back(removed);
    } else {
      tentative_released_.push_back(removed);
      tentative_count_.fetch_add(1, std::memory_order_relaxed);
    }
    pthread_mutex_unlock(&shutdown_mu_);
    return true;
  }
  OnRemoved(removed);
  return true;
}

namespace {

// `p` is the connection `child` came from: at its address, a connection,
// there when the child was acquired (a newer handle at the same address, a
// reuse of the closed connection's memory, is not).
bool IsParentOf(const Record& p, const Record& child) {
  return p.key == child.parent && p.kind->family == Family::kConn &&
         p.acquired_ns <= child.acquired_ns;
}

}  // namespace

bool Tracker::KeptPastClosedParent(const Record& r) {
  if (r.parent == 0) return false;
  bool held = false;
  table_.Update(r.parent, [&](Record& p) { held = IsParentOf(p, r); });
  if (held) return false;
  pthread_mutex_lock(&shutdown_mu_);
  for (const auto* list : {&shutdown_released_, &tentative_released_}) {
    for (const Record& p : *list) held = held || IsParentOf(p, r);
  }
  pthread_mutex_unlock(&shutdown_mu_);
  return !held;
}

void Tracker::BeginInterpreterShutdown() {
  if (shutdown_begun_.exchange(true, std::memory_order_acq_rel)) return;
  ExitPoint();
}

Tracker::ShutdownVerdict Tracker::ProbeInterpreterShutdownSlow() {
  if (shutdown_begun_.load(std::memory_order_acquire)) return kShutdown;
  ShutdownProbe probe = shutdown_probe_.load(std::memory_order_acquire);
  if (probe == nullptr) return kNotShutdown;
  const ShutdownVerdict verdict = probe();
  if (verdict == kShutdown) {
    BeginInterpreterShutdown();
  } else if (verdict == kNotShutdown &&
             tentative_count_.load(std::memory_order_relaxed) != 0) {
    ConfirmTentative();
  }
  return verdict;
}

void Tracker::ConfirmTentative() {
  ScrubbedVector<Record> released;
  pthread_mutex_lock(&shutdown_mu_);
  released.swap(tentative_released_);
  tentative_count_.store(0, std::memory_order_relaxed);
  pthread_mutex_unlock(&shutdown_mu_);
  for (Record& r : released) {
    r.flags = static_cast<uint16_t>(r.flags & ~kReleasedAtShutdown);
    OnRemoved(r);
  }
}

void Tracker::PromoteTentative() {
  if (tentative_count_.load(std::memory_order_relaxed) == 0) return;
  pthread_mutex_lock(&shutdown_mu_);
  for (const Record& r : tentative_released_) shutdown_released_.push_back(r);
  tentative_released_.clear();
  tentative_count_.store(0, std::memory_order_relaxed);
  shutdown_begun_.store(true, std::memory_order_release);
  pthread_mutex_unlock(&shutdown_mu_);
}

uint32_t Tracker::CaptureReleaseStackSlow(const void* caller) {
  if (release_stack_depth_ <= 0) return 0;
  const uintptr_t site = reinterpret_cast<uintptr_t>(caller);
  if (release_stack_depth_ == 1 && site == 0) return 0;
  // Errno is kept (Tracker::ReleaseYoung's callers rely on it, and
  // ThreadBlock keeps it too).
  const int saved_errno = errno;
  uint32_t id;
  if (release_stack_depth_ == 1) {
    id = stacks_.Put(&site, 1);
    // Release sites are few: the thread's cache, which CaptureReleaseStack
    // looked in, spares the depot lookup next time.
    if (unsigned char* block = ThreadBlock()) {
      ReleaseSiteEntry& entry = ReleaseSiteFor(block, site);
      RewriteCacheEntry(entry.site, site, [&] { entry.id = id; });
    }
  } else {
    uintptr_t frames[kMaxFrames];
    int n = CaptureStack(frames, release_stack_depth_);
    id = stacks_.Put(frames, static_cast<uint32_t>(n));
  }
  errno = saved_errno;
  return id;
}

namespace {

bool ReportMisuse(Tracker& tracker, std::atomic<EventSink*>& sink,
                  Misuse::Type type, const ReleasedRecord& first,
                  const char* function) {
  Misuse misuse{
      type,   function, first, tracker.CaptureStackId(), Tracker::CurrentTid(),
      NowNs()};
  if (EventSink* s = sink.load(std::memory_order_acquire)) s->OnMisuse(misuse);
  return true;
}

}  // namespace

bool Tracker::CheckReleaseMisuse(uintptr_t key, const KindDesc* kind,
                                 const char* function) {
  if (key == 0) return false;
  ReleasedRecord first;
  if (!table_.FindReleased(key, &first) || first.kind != kind) {
    unknown_releases_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  misuses_.fetch_add(1, std::memory_order_relaxed);
  return ReportMisuse(*this, sink_, Misuse::kDoubleRelease, first, function);
}

bool Tracker::CheckUseMisuse(uintptr_t key, const KindDesc* kind,
                             const char* function) {
  if (key == 0) return false;
  ReleasedRecord first;
  if (!table_.FindReleased(key, &first) || first.kind != kind) return false;
  misuses_.fetch_add(1, std::memory_order_relaxed);
  return ReportMisuse(*this, sink_, Misuse::kUseAfterClose, first, function);
}

bool Tracker::MarkExited(uintptr_t key, int64_t now_ns) {
  Record removed;
  bool erased = false;
  bool found = table_.Mutate(
      key,
      [&](Record& r) {
        r.flags |= kExited;
        r.active_ns = now_ns;
        return (r.flags & kDetached) != 0;
      },
      &removed, &erased);
  if (erased) OnRemoved(removed);
  return found;
}

bool Tracker::MarkDetached(uintptr_t key) {
  Record removed;
  bool erased = false;
  bool found = table_.Mutate(
      key,
      [&](Record& r) {
        r.flags |= kDetached;
        return (r.flags & kExited) != 0;
      },
      &removed, &erased);
  if (erased) OnRemoved(removed);
  return found;
}

bool Tracker::GetSerial(uintptr_t key, uint32_t* serial) {
  return table_.Update(key, [&](Record& r) { *serial = r.serial; });
}

bool Tracker::SetDetail(uintptr_t key, uint32_t detail) {
  return table_.Update(key, [&](Record& r) { r.identity.detail = detail; });
}

bool Tracker::ReleaseIfExited(uintptr_t key) {
  Record removed;
  bool erased = false;
  table_.Mutate(
      key, [&](Record& r) { return (r.flags & kExited) != 0; }, &removed,
      &erased);
  if (erased) OnRemoved(removed);
  return erased;
}

bool Tracker::ReleaseIfSerial(uintptr_t key, uint32_t serial) {
  Record removed;
  bool erased = false;
  table_.Mutate(
      key, [&](Record& r) { return r.serial == serial; }, &removed, &erased);
  if (erased) OnRemoved(removed);
  return erased;
}

// Under the record's shard lock, before `r` is marked active: if it is a
// connection reported idle, it is in use again — slow, not leaked, and it may
// be reported again if it goes idle again. Copies it as it was (its old
// activity time says how long it was idle) into `reported` and returns true
// if a note is due.
bool Tracker::ShouldUse(const Record& r, bool asked, ShutdownVerdict verdict,
                        bool* probe) const {
  if (shutdown_begun_.load(std::memory_order_acquire)) {
    return false;  // the interpreter's teardown, not the script's use
  }
  if (asked) return verdict == kNotShutdown;
  // A connection reported idle used again, or any activity while a tentative
  // release waits: unless the interpreter is tearing it down (asked once,
  // outside the lock, by the caller).
  if (((r.flags & kReportedLive) ||
       tentative_count_.load(std::memory_order_relaxed) != 0) &&
      shutdown_probe_.load(std::memory_order_relaxed) != nullptr) {
    *probe = true;
    return false;
  }
  return true;
}

bool Tracker::TakeReportedIdle(Record& r, Record* reported) {
  if (!(r.flags & kReportedLive) || !FamilyUsesIdleTime(r.kind->family)) {
    return false;
  }
  ClearFlags(r, kReportedLive);
  *reported = r;
  return !(r.flags & kInherited);
}

template <typename Fn>
bool Tracker::UseRecord(uintptr_t key, int64_t now, Fn&& fn) {
  // The common case: no shutdown, no tentative release, the record not
  // reported idle.
  if (tentative_count_.load(std::memory_order_relaxed) == 0 &&
      !shutdown_begun_.load(std::memory_order_relaxed)) [[likely]] {
    bool plain = true;
    Record* where = nullptr;
    const bool found = table_.Update(key, [&](Record& r) {
      where = &r;
      if (LoadFlags(r) & kReportedLive) {
        plain = false;
        return;
      }
      MarkActive(r, now);
      fn(r, true);
    });
    if (found) RememberHot(key, where);
    if (plain) return found;
  }
  Record reported;
  bool was_reported = false;
  bool asked = false;
  ShutdownVerdict verdict = kNotShutdown;
  bool found;
  while (true) {
    bool probe = false;
    found = table_.Update(key, [&](Record& r) {
      const bool use = ShouldUse(r, asked, verdict, &probe);
      if (use) {
        // Before the activity marks it active: the note must say how long
        // it was idle, not how long a call took.
        was_reported = TakeReportedIdle(r, &reported);
        MarkActive(r, now);
      }
      fn(r, use);
    });
    if (!probe) break;
    verdict = ProbeInterpreterShutdown();  // outside the table's lock
    asked = true;
  }
  if (was_reported) QueueNote(LiveNote::kActiveAgain, reported, now);
  return found;
}

bool Tracker::TouchSlow(int64_t now, uintptr_t key, Identity* identity,
                        uintptr_t* parent, uint32_t* query_id,
                        uint32_t set_query_id) {
  const int saved_errno = errno;
  uint32_t query_now = 0;
  const bool found = UseRecord(key, now, [&](Record& r, bool use) {
    if (use) tracker_internal::EndUse(r, set_query_id);
    tracker_internal::ReadUse(r, identity, parent, query_id);
    query_now = __atomic_load_n(&r.query_id, __ATOMIC_RELAXED);
  });
  if (found) {
    t_touched_key = Disguise(key);
    t_touched_ns = now;
    t_touched_query = query_now;
  }
  errno = saved_errno;
  return found;
}

bool Tracker::BeginCallSlow(uintptr_t key, int64_t now) {
  const int saved_errno = errno;
  const bool found = UseRecord(key, now, [](Record& r, bool use) {
    if (use && !(LoadFlags(r) & kInCall)) SetFlags(r, kInCall);
  });
  errno = saved_errno;
  return found;
}

void Tracker::NoteReuse(Record& r, int64_t gap_ns) const {
  const Family family = r.kind->family;
  if (!(FamilyUsesIdleTime(family) || r.kind->judged_by_growth) ||
      (r.flags & kInCall) || table_.InCallOnAnyThread(r.key)) {
    return;
  }
  const int64_t threshold = threshold_ns_[static_cast<int>(family)];
  if (threshold > 0 && gap_ns >= threshold / 2) {
    SetFlags(r, kReused);
    uint8_t code = EncodeGapMs(static_cast<uint64_t>(gap_ns / 1000000));
    if (code > r.gap_code) r.gap_code = code;
  }
}

size_t Tracker::ReleaseChildren(const KindDesc* kind, uintptr_t parent) {
  if (parent == 0) return 0;
  // Keys are gathered a batch at a time on the stack (no allocation; the
  // lambda's captures fit std::function's own storage), then released.
  constexpr size_t kBatch = 64;
  struct Batch {
    const KindDesc* kind;
    uintptr_t parent;
    uintptr_t keys[kBatch];
    size_t n;
  } batch{kind, parent, {}, 0};
  size_t released = 0;
  do {
    batch.n = 0;
    table_.ForEach([&batch](Record& r) {
      if (batch.n < kBatch && r.kind == batch.kind &&
          r.parent == batch.parent) {
        batch.keys[batch.n++] = r.key;
      }
    });
    for (size_t i = 0; i < batch.n; ++i) released += Release(batch.keys[i]);
  } while (batch.n == kBatch);
  return released;
}

bool Tracker::Ignore(uintptr_t key) {
  if (key == 0) return false;
  return table_.Update(key, [](Record& r) { SetFlags(r, kIgnored); });
}

bool Tracker::SetIdentity(uintptr_t key, const Identity& identity) {
  if (key == 0) return false;
  return table_.Update(key, [&](Record& r) { r.identity = identity; });
}

uint32_t Tracker::InternString(std::string_view s) {
  return strings_.Put(s.data(), static_cast<uint32_t>(s.size()));
}

uint32_t Tracker::InternQuery(std::string_view text) {
  if (text.empty()) return 0;
  uint32_t size = static_cast<uint32_t>(text.size());
  if (queries_kept_.load(std::memory_order_relaxed) >= kMaxQueries) {
    return strings_.Find(text.data(), size);
  }
  uint32_t before = strings_.size();
  uint32_t id = strings_.Put(text.data(), size);
  if (strings_.size() != before) {
    queries_kept_.fetch_add(1, std::memory_order_relaxed);
  }
  return id;
}

void Tracker::QueueNote(LiveNote::Type type, const Record& record,
                        int64_t at_ns) {
  notes_mu_.Lock();
  if (notes_.size() < kMaxNotes) {
    notes_.push_back(LiveNote{type, record, at_ns});
  } else {
    ++notes_dropped_;
  }
  notes_mu_.Unlock();
}

ScrubbedVector<LiveNote> Tracker::TakeNotes(uint64_t* dropped) {
  ScrubbedVector<LiveNote> out;
  *dropped = 0;
  if (!notes_mu_.LockUnlessGivenUp(exiting_)) return out;
  out.swap(notes_);
  *dropped = notes_dropped_;
  notes_dropped_ = 0;
  notes_mu_.Unlock();
  return out;
}

namespace {

bool IsThread(const Record& r) { return r.kind->family == Family::kThread; }
bool IsRunningThread(const Record& r) {
  return IsThread(r) && !(r.flags & kExited);
}
bool HasParent(const Record& r) {
  return r.kind->lives_with_parent && r.parent != 0;
}

// A result that came from a connection (see Tracker::SetShutdownProbe).
bool IsResultOfConnection(const Record& r) {
  return r.kind->family == Family::kResult && r.parent != 0 && !HasParent(r);
}

// In a script interpreter, a result's `finding` as its connection's rule
// has it: held too long only with a connection convicted (`conns`: the
// findings of the connections alive; a closed one's result is its driver
// object's).
Finding WithItsConnection(const Record& r, Finding finding,
                          const ScrubbedHashMap<uintptr_t, Finding>& conns) {
  if (finding != Finding::kHeldTooLong || !IsResultOfConnection(r)) {
    return finding;
  }
  auto parent = conns.find(r.parent);
  return parent == conns.end() || parent->second == Finding::kNone
             ? Finding::kNone
             : finding;
}

}  // namespace

// Running threads of one creation site older than the threshold; idle,
// never reused connections or statements of one acquisition site.
struct Tracker::SiteAggregate {
  uint32_t count = 0;
  int64_t first_created = INT64_MAX;
  int64_t last_created = INT64_MIN;
  Record oldest;
  void Add(const Record& r) {
    ++count;
    if (r.acquired_ns < first_created) {
      first_created = r.acquired_ns;
      oldest = r;
    }
    if (r.acquired_ns > last_created) last_created = r.acquired_ns;
  }
  int64_t span() const { return count == 0 ? 0 : last_created - first_created; }
};

namespace {

Finding LostFinding(const Record& r) {
  switch (static_cast<Reach>(r.reach)) {
    case Reach::kLost:
      return Finding::kLost;
    case Reach::kIndirectlyLost:
      return Finding::kIndirectlyLost;
    default:
      return Finding::kNone;
  }
}

}  // namespace

Finding Tracker::Judge(const Record& r, int64_t now_ns, bool parent_alive,
                       const ConnContext& conn) const {
  const Family family = r.kind->family;
  const int64_t threshold = threshold_ns_[static_cast<int>(family)];
  if (threshold <= 0 || (r.flags & kIgnored) || IsRunningThread(r)) {
    return Finding::kNone;
  }
  if (IsThread(r)) {  // exited: counted from its exit
    return now_ns - r.active_ns >= threshold ? Finding::kNeverJoined
                                             : Finding::kNone;
  }
  const bool idle_rule = FamilyUsesIdleTime(family);
  // A connection inside a blocking call is in use, however long it takes.
  if (idle_rule && (r.flags & kInCall)) return Finding::kNone;
  const Finding lost = LostFinding(r);
  // A handle that lives with its parent: its clock restarts while the parent
  // lives (Scan), and activity on it restarts it too. Lost, it can never be
  // released, parent or not.
  if (r.kind->lives_with_parent) {
    if (r.parent != 0 && parent_alive) {
      return lost != Finding::kNone && now_ns - r.acquired_ns >= threshold
                 ? lost
                 : Finding::kNone;
    }
    // Outlived its parent: counted from when a scan found the parent gone
    // (a kind judged by growth keeps its own activity in active_ns until
    // then; one whose parent went since the last scan has just outlived it).
    const int64_t since = !r.kind->judged_by_growth || (r.flags & kParentGone)
                              ? r.active_ns
                              : now_ns;
    if (now_ns - since < threshold) return Finding::kNone;
    if (lost != Finding::kNone) return lost;
    // Still referred to: the driver keeps it until its own object dies.
    if (r.kind->kept_past_parent &&
        static_cast<Reach>(r.reach) == Reach::kReachable) {
      return Finding::kNone;
    }
    return r.parent != 0 ? Finding::kOutlivedParent : Finding::kHeldTooLong;
  }
  if (!idle_rule) {
    if (now_ns - r.acquired_ns < threshold) return Finding::kNone;
    return lost != Finding::kNone ? lost : Finding::kHeldTooLong;
  }
  // Connections (README, "connections and pools").
  const int64_t idle = now_ns - r.active_ns;
  if (idle < threshold) return Finding::kNone;
  if (lost != Finding::kNone) return lost;
  const int64_t gap = std::max<int64_t>(
      conn.site_gap_ns,
      static_cast<int64_t>(DecodeGapMs(r.gap_code)) * 1000000);
  if (gap == 0) {
    // Nothing from this site was ever used again after a pause: one opened
    // alone and left idle is suspect; a batch opened together is a pool
    // being filled (its growth is the site's business).
    return conn.batch ? Finding::kNone : Finding::kIdleTooLong;
  }
  // A pool: its connections rest between uses. One is left out only when it
  // rested far longer than the site's longest pause while the others kept
  // being used long after it.
  if (idle < std::max(threshold, 4 * gap)) return Finding::kNone;
  return conn.others_active_ns > r.active_ns + 2 * gap ? Finding::kIdleTooLong
                                                       : Finding::kNone;
}

// The connections open now, by acquisition site (kind and stack), with
// what each site's history taught (Tracker::site_gap_).
struct Tracker::ConnSites {
  struct Site {
    int64_t gap_ns = 0;             // longest reuse gap, now or ever
    std::vector<int64_t> acquired;  // open connections' acquisition times
    int64_t active1 = INT64_MIN;    // the latest activity
    int64_t active2 = INT64_MIN;    // the one before
  };
  std::unordered_map<uint64_t, Site> sites;

  void Add(const Record& r) {
    Site& site = sites[SiteKey(r)];
    site.gap_ns = std::max<int64_t>(
        site.gap_ns, static_cast<int64_t>(DecodeGapMs(r.gap_code)) * 1000000);
    site.acquired.push_back(r.acquired_ns);
    if (r.active_ns >= site.active1) {
      site.active2 = site.active1;
      site.active1 = r.active_ns;
    } else if (r.active_ns > site.active2) {
      site.active2 = r.active_ns;
    }
  }
  // Sorts the sites and merges their gaps with `history` both ways.
  void Finish(std::unordered_map<uint64_t, int64_t>* history) {
    for (auto& [key, site] : sites) {
      std::sort(site.acquired.begin(), site.acquired.end());
      int64_t& known = (*history)[key];
      known = std::max(known, site.gap_ns);
      site.gap_ns = known;
    }
  }
  ConnContext For(const Record& r, int64_t threshold_ns) const {
    ConnContext ctx;
    auto it = sites.find(SiteKey(r));
    if (it == sites.end()) return ctx;
    const Site& site = it->second;
    ctx.site_gap_ns = site.gap_ns;
    // Itself, and any other opened within the threshold of it.
    auto lo = std::lower_bound(site.acquired.begin(), site.acquired.end(),
                               r.acquired_ns - threshold_ns + 1);
    auto hi = std::upper_bound(site.acquired.begin(), site.acquired.end(),
                               r.acquired_ns + threshold_ns - 1);
    ctx.batch = hi - lo > 1;
    ctx.others_active_ns =
        r.active_ns == site.active1 ? site.active2 : site.active1;
    return ctx;
  }
};

namespace {

// Counts the records of the sites a sample asks for (at most
// OpenSample::kMaxSites) while the table is walked: one hash probe per
// record in a table of twice as many slots, no allocation.
class SiteCounter {
 public:
  // The sites of `sink`'s samples (EventSink::SampleSites), duplicates
  // dropped.
  explicit SiteCounter(const EventSink& sink) {
    std::fill(std::begin(slot_), std::end(slot_), -1);
    uint64_t keys[OpenSample::kMaxSites];
    int n = std::clamp(sink.SampleSites(keys), 0, OpenSample::kMaxSites);
    for (int i = 0; i < n; ++i) {
      uint32_t at = Slot(keys[i]);
      while (slot_[at] >= 0 && keys_[slot_[at]] != keys[i]) {
        at = (at + 1) % kSlots;
      }
      if (slot_[at] >= 0) continue;
      slot_[at] = static_cast<int8_t>(num_);
      keys_[num_++] = keys[i];
      kinds_ |= uint32_t{1} << ((keys[i] >> 32) % kMaxKinds);
    }
  }
  // Adds `delta` to the count of `r`'s site, if it is one of them.
  void Count(const Record& r, int delta = 1) {
    if (!((kinds_ >> r.kind->index) & 1)) return;  // none of its kind
    const uint64_t key = SiteKey(r);
    for (uint32_t at = Slot(key); slot_[at] >= 0; at = (at + 1) % kSlots) {
      if (keys_[slot_[at]] == key) {
        counts_[slot_[at]] += delta;
        return;
      }
    }
  }
  void Fill(OpenSample* sample) const {
    sample->num_sites = num_;
    for (int i = 0; i < num_; ++i) {
      sample->site_key[i] = keys_[i];
      sample->site_open[i] = counts_[i];
    }
  }

 private:
  static_assert(kMaxKinds <= 32, "kinds_ has a bit per kind");
  static constexpr uint32_t kSlots = 64;  // a power of two
  static_assert(kSlots >= 2 * OpenSample::kMaxSites);
  static uint32_t Slot(uint64_t key) {  // Fibonacci hashing: the top bits
    return static_cast<uint32_t>((key * 0x9e3779b97f4a7c15ull) >> 58);
  }
  int num_ = 0;
  uint32_t kinds_ = 0;  // the kinds of the sites, as bits
  uint64_t keys_[OpenSample::kMaxSites] = {};
  uint64_t counts_[OpenSample::kMaxSites] = {};
  int8_t slot_[kSlots];  // index into keys_, or -1: free
};

}  // namespace

// What phase 1 of a scan gathers under the shard locks.
struct Tracker::ScanPass {
  ScanPass(int64_t now, bool metrics, const EventSink* sample_for,
           bool interpreter)
      : now_ns(now),
        want_metrics(metrics),
        want_sample(sample_for != nullptr),
        script_interpreter(interpreter) {
    if (sample_for != nullptr) sites.emplace(*sample_for);
  }
  int64_t now_ns;
  bool want_metrics;
  bool want_sample;                  // EventSink::WantsSampleAt(now_ns)
  bool script_interpreter;           // Tracker::IsScriptInterpreter
  std::optional<SiteCounter> sites;  // with want_sample
  OpenSample sample;                 // with want_sample
  // Past a rule and not reported yet, and every handle living with a parent
  // (its parent's liveness is checked in phase 2); a connection with what
  // its site knows.
  struct Candidate {
    Record record;
    ConnContext conn;
  };
  ScrubbedVector<Candidate> candidates;
  ScrubbedVector<Record> conns;  // open connections, judged with their sites
  SiteMap thread_sites;          // by SiteKey
  MetricsSnapshot metrics;
  ScrubbedVector<Held> connections;        // for per-identity metrics
  ScrubbedHashMap<uintptr_t, int> pinned;  // connection -> pinning results
  // Results from a connection, judged once the connections are
  // (JudgeResults).
  ScrubbedVector<Record> results;
  // Every connection, with the finding of its rule (JudgeConnections).
  ScrubbedHashMap<uintptr_t, Finding> conn_findings;
  // Handles a thread is in a call on by its young slot (KeysInCall), sorted:
  // collected as if their records had kInCall.
  ScrubbedVector<uintptr_t> in_call;
};

void Tracker::Scan() {
  if (exiting_.load(std::memory_order_acquire)) return;
  if (pthread_mutex_trylock(&scan_run_mu_) != 0) return;  // one is running
  struct Unlock {
    pthread_mutex_t* mu;
    ~Unlock() { pthread_mutex_unlock(mu); }
  } unlock{&scan_run_mu_};
  // First, before this pass copies any key onto the heap.
  ReachPass(/*at_exit=*/false);
  const int64_t now = NowNs();
  EventSink* sink = sink_.load(std::memory_order_acquire);
  ScanPass pass(now, !options_.metrics.empty(),
                sink != nullptr && sink->WantsSampleAt(now) ? sink : nullptr,
                IsScriptInterpreter());
  ScanEvents events;
  events.now_ns = pass.now_ns;
  // Notes first: they are about handles reported in earlier scans, so none of
  // them can refer to a warning that this scan has yet to pass on.
  events.notes = TakeNotes(&events.notes_dropped);
  table_.KeysInCall(&pass.in_call);
  table_.ForEach([&](Record& r) { CollectForScan(r, &pass); }, 0, &exiting_);
  JudgeConnections(&pass, &events.growing);
  JudgeResults(&pass);
  MarkOverdue(&pass, &events);
  FindGrowingSites(pass, &events.growing);
  if (pass.want_metrics) {
    FillMetrics(&pass);
    events.metrics = &pass.metrics;
  }
  if (pass.want_sample) {
    std::copy(std::begin(pass.metrics.open), std::end(pass.metrics.open),
              std::begin(pass.sample.open));
    for (int k = 0; k < kMaxKinds; ++k) {
      pass.sample.kinds[k] = kinds_[k].load(std::memory_order_relaxed);
    }
    pass.sites->Fill(&pass.sample);
    events.sample = &pass.sample;
  }
  if (events.overdue.empty() && events.notes.empty() &&
      events.growing.empty() && events.notes_dropped == 0 &&
      !pass.want_metrics && !pass.want_sample) {
    return;
  }
  if (EventSink* to = sink_.load(std::memory_order_acquire)) {
    to->OnScan(events);
  }
}

// Phase 1, under the record's shard lock.
void Tracker::CollectForScan(const Record& r, ScanPass* pass) {
  if (r.flags & kInherited) return;  // the parent process's business
  if (!pass->in_call.empty() && !(r.flags & kInCall) &&
      std::binary_search(pass->in_call.begin(), pass->in_call.end(), r.key)) {
    Record in_call = r;
    in_call.flags |= kInCall;
    CollectForScan(in_call, pass);
    return;
  }
  const bool has_parent = HasParent(r);
  const bool conn = FamilyUsesIdleTime(r.kind->family);
  if (pass->want_metrics || pass->want_sample) {
    ++pass->metrics.open[r.kind->index];  // samples read it too
    if (pass->want_sample) pass->sites->Count(r);
  }
  if (pass->want_metrics) {
    MetricsSnapshot& m = pass->metrics;
    if (IsRunningThread(r)) ++m.threads_live;
    if ((r.flags & kPinsParent) && r.parent != 0) ++pass->pinned[r.parent];
  }
  if (pass->script_interpreter) {  // results judged with their connections
    if (conn) pass->conn_findings[r.key] = Finding::kNone;
    if (IsResultOfConnection(r)) {
      pass->results.push_back(r);
      return;
    }
  }
  if (conn) {  // judged with their sites (JudgeConnections)
    if (!(r.flags & kIgnored)) {
      pass->conns.push_back(r);
    } else if (pass->want_metrics) {
      pass->connections.push_back(Held{r, Finding::kNone});
    }
    return;
  }
  // Judged now unless its parent must be looked up first (phase 2).
  JudgeCollected(r, has_parent, pass);
}

void Tracker::JudgeResults(ScanPass* pass) {
  for (const Record& r : pass->results) JudgeCollected(r, false, pass);
}

void Tracker::JudgeCollected(const Record& r, bool has_parent, ScanPass* pass) {
  Finding finding = has_parent ? Finding::kNone : Judge(r, pass->now_ns, false);
  if (pass->script_interpreter) {
    finding = WithItsConnection(r, finding, pass->conn_findings);
  }
  if (pass->want_metrics && PastThreshold(finding, r.kind->family)) {
    ++pass->metrics.past_threshold[r.kind->index];
  }
  if (r.flags & kIgnored) return;
  // A running thread only counts towards its site's growth.
  if (IsRunningThread(r)) {
    const int64_t threshold = threshold_ns_[static_cast<int>(Family::kThread)];
    if (threshold > 0 && pass->now_ns - r.acquired_ns >= threshold) {
      pass->thread_sites[SiteKey(r)].Add(r);
    }
    return;
  }
  if (has_parent || (finding != Finding::kNone && !(r.flags & kReportedLive) &&
                     !AwaitsVerdict(r, pass->now_ns))) {
    pass->candidates.push_back({r, ConnContext()});
  }
}

namespace {

// A connection that counts towards its site's growth: idle past the
// threshold, from a site where no connection was ever used again.
bool IdleNeverReused(const Record& r, const ConnContext& ctx, int64_t now_ns,
                     int64_t threshold_ns) {
  return threshold_ns > 0 && ctx.site_gap_ns == 0 && !(r.flags & kInCall) &&
         now_ns - r.active_ns >= threshold_ns;
}

// A statement that counts towards its site's growth (judged by growth, on a
// live connection, no other rule against it): idle past the threshold, never
// used again after a gap.
bool StatementIdleNeverReused(const Record& r, Finding finding,
                              bool parent_alive, int64_t now_ns,
                              int64_t threshold_ns) {
  return r.kind->judged_by_growth && parent_alive &&
         finding == Finding::kNone && threshold_ns > 0 &&
         !(r.flags & (kInCall | kReused | kIgnored)) &&
         now_ns - r.active_ns >= threshold_ns;
}

}  // namespace

// The connections, judged with their sites; connection sites whose idle,
// never reused connections keep growing (warned at each doubling).
void Tracker::JudgeConnections(ScanPass* pass,
                               ScrubbedVector<SiteGrowth>* growing) {
  if (pass->conns.empty()) return;
  const int64_t threshold = threshold_ns_[static_cast<int>(Family::kConn)];
  ConnSites sites;
  for (const Record& r : pass->conns) sites.Add(r);
  pthread_mutex_lock(&scan_mu_);
  sites.Finish(&site_gap_);
  pthread_mutex_unlock(&scan_mu_);
  SiteMap unused;
  for (const Record& r : pass->conns) {
    const ConnContext ctx = sites.For(r, threshold);
    const Finding finding = Judge(r, pass->now_ns, false, ctx);
    if (pass->script_interpreter) pass->conn_findings[r.key] = finding;
    if (pass->want_metrics) {
      if (PastThreshold(finding, r.kind->family)) {
        ++pass->metrics.past_threshold[r.kind->index];
      }
      pass->connections.push_back(Held{r, finding});
    }
    if (finding != Finding::kNone && !(r.flags & kReportedLive) &&
        !AwaitsVerdict(r, pass->now_ns)) {
      pass->candidates.push_back({r, ctx});
    }
    if (IdleNeverReused(r, ctx, pass->now_ns, threshold)) {
      unused[SiteKey(r)].Add(r);
    }
  }
  WarnGrowingSites(Family::kConn, unused, growing);
}

void Tracker::WarnGrowingSites(Family family, const SiteMap& sites,
                               ScrubbedVector<SiteGrowth>* growing) {
  if (sites.empty()) return;
  pthread_mutex_lock(&scan_mu_);
  for (const auto& [key, site] : sites) {
    if (!IsGrowing(family, site.count, site.span())) continue;
    uint32_t& warned = site_warned_[key];
    if (warned != 0 && site.count < 2 * warned) continue;
    growing->push_back(
        SiteGrowth{site.oldest, site.count, warned, site.span()});
    warned = site.count;
  }
  pthread_mutex_unlock(&scan_mu_);
}

// Phase 2, one shard lock at a time (never nested: fork's prepare handler
// takes them all in order): restarts the clock of handles whose parent is
// still alive (a kind judged by growth keeps its activity time and is
// counted towards its site's growth instead), forgets those that end with
// a parent that is gone, and marks the rest reported unless they changed
// meanwhile.
void Tracker::MarkOverdue(ScanPass* pass, ScanEvents* events) {
  const int64_t stmt_threshold = threshold_ns_[static_cast<int>(Family::kStmt)];
  SiteMap unused;  // statements idle and never used again, by site
  for (const ScanPass::Candidate& candidate : pass->candidates) {
    const Record& c = candidate.record;
    if (exiting_.load(std::memory_order_acquire)) break;
    const bool has_parent = HasParent(c);
    int64_t parent_acquired_ns = 0;
    const bool parent_alive =
        has_parent && table_.Update(c.parent, [&](Record& p) {
          parent_acquired_ns = p.acquired_ns;
        });
    if (has_parent && c.kind->ends_with_parent &&
        (!parent_alive || parent_acquired_ns > c.acquired_ns)) {
      // Its session ended (a connection closed, or a new one at the same
      // address): the server dropped it with its parent.
      Record removed;
      bool erased = false;
      table_.Mutate(
          c.key,
          [&](Record& r) {
            return r.acquired_ns == c.acquired_ns && r.kind == c.kind;
          },
          &removed, &erased);
      continue;
    }
    const bool growth = has_parent && c.kind->judged_by_growth;
    Held marked;
    bool fresh = false;
    bool counted = false;
    bool idle_unused = false;
    Record idle;
    table_.Update(c.key, [&](Record& r) {
      if (r.acquired_ns != c.acquired_ns || r.kind != c.kind) return;
      if (parent_alive && !growth) r.active_ns = pass->now_ns;
      if (!parent_alive && growth && !(r.flags & kParentGone)) {
        SetFlags(r, kParentGone);
        r.active_ns = pass->now_ns;
      }
      Finding finding = Judge(r, pass->now_ns, parent_alive, candidate.conn);
      // Its verdict first: lost, or still referred to (a closed connection's
      // cancel handle that the driver keeps) — a later scan says which.
      if (finding != Finding::kNone && AwaitsVerdict(r, pass->now_ns)) {
        finding = Finding::kNone;
      }
      counted = has_parent && PastThreshold(finding, r.kind->family);
      if (has_parent &&
          StatementIdleNeverReused(r, finding, parent_alive, pass->now_ns,
                                   stmt_threshold)) {
        idle_unused = true;
        idle = r;
      }
      if (finding == Finding::kNone || (r.flags & kReportedLive)) return;
      SetFlags(r, kReportedLive);
      marked = Held{r, finding};
      fresh = true;
    });
    if (idle_unused) unused[SiteKey(idle)].Add(idle);
    if (counted && pass->want_metrics) {
      ++pass->metrics.past_threshold[c.kind->index];
    }
    if (fresh) {
      events->overdue.push_back(marked);
      reported_total_[marked.record.kind->index].fetch_add(
          1, std::memory_order_relaxed);
    }
  }
  // Statements of a growing site are leaks in progress: counted with those
  // past their threshold, as the exit report counts them.
  if (pass->want_metrics) {
    for (const auto& [key, site] : unused) {
      if (IsGrowing(Family::kStmt, site.count, site.span())) {
        pass->metrics.past_threshold[site.oldest.kind->index] += site.count;
      }
    }
  }
  WarnGrowingSites(Family::kStmt, unused, &events->growing);
}

// Thread sites that keep growing: warned the first time, then at each
// doubling of the count.
void Tracker::FindGrowingSites(const ScanPass& pass,
                               ScrubbedVector<SiteGrowth>* growing) {
  WarnGrowingSites(Family::kThread, pass.thread_sites, growing);
}

void Tracker::FillMetrics(ScanPass* pass) {
  MetricsSnapshot& metrics = pass->metrics;
  metrics.totals = Totals();
  pthread_mutex_lock(&scan_mu_);
  for (int k = 0; k < kMaxKinds; ++k) {
    metrics.kinds[k] = kinds_[k].load(std::memory_order_relaxed);
    peak_open_[k] = std::max(peak_open_[k], metrics.open[k]);
    metrics.peak_open[k] = peak_open_[k];
    metrics.reported[k] = reported_total_[k].load(std::memory_order_relaxed);
  }
  pthread_mutex_unlock(&scan_mu_);
  std::map<std::pair<const KindDesc*, uint32_t>, size_t> index;
  for (const Held& c : pass->connections) {
    const Record& r = c.record;
    auto [it, added] = index.try_emplace({r.kind, r.identity.string_id},
                                         metrics.connections.size());
    if (added) metrics.connections.push_back({r.kind, r.identity.string_id});
    MetricsSnapshot::Connections& g = metrics.connections[it->second];
    ++g.open;
    if (r.flags & kInCall) {
      ++g.in_use;
    } else if (PastThreshold(c.finding, r.kind->family)) {
      ++g.idle;
    }
    if (pass->pinned.count(r.key)) ++g.pinned;
  }
}

// The exact rule (README, "threads" and "connections and pools"): at least
// two (threads running / connections idle and never used again) of one site
// older than the threshold, created over more than the threshold — a batch
// started together and alive since is a pool.
bool Tracker::IsGrowing(Family family, uint32_t count, int64_t span_ns) const {
  int64_t threshold = threshold_ns_[static_cast<int>(family)];
  return threshold > 0 && count >= 2 && span_ns > threshold;
}

void Tracker::StartWatchdog() {
  // The watchdog runs even with every live feature off: the exit report is
  // written on it.
  if (StartAgentThread(&watchdog_thread_, &Tracker::WatchdogMain, this)) {
    watchdog_running_.store(true, std::memory_order_release);
  }
}

bool StartAgentThread(pthread_t* thread, void* (*fn)(void*), void* arg) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  // 1 MiB: symbolizing a report runs libdw's dwarf_getsrclines on the
  // agent's thread, which can take well over 100 KiB of stack for one frame;
  // and glibc carves the static TLS of every loaded object (libtsan's is
  // several hundred KiB) out of the size asked for here. An overflow, with
  // every signal blocked, would kill the host with SIGSEGV. Only the pages
  // touched become resident.
  pthread_attr_setstacksize(&attr, 1024 * 1024);
  bool ok = pthread_create(thread, &attr, fn, arg) == 0;
  // Named, so that `leakwatch attach` never picks it to run its calls on,
  // and so that `top -H` says whose it is.
  if (ok) pthread_setname_np(*thread, "leakwatch");
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return ok;
}

namespace {

// Waits while `*word` == `expected`, until the CLOCK_MONOTONIC time `until`
// (null: no limit), a wake-up, or a signal.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               const struct timespec* until) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word),
          FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, until, nullptr,
          FUTEX_BITSET_MATCH_ANY);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word),
          FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT32_MAX, nullptr, nullptr, 0);
}

void AddNs(struct timespec* t, int64_t ns) {
  t->tv_nsec += ns % 1000000000;
  t->tv_sec += ns / 1000000000 + t->tv_nsec / 1000000000;
  t->tv_nsec %= 1000000000;
}

}  // namespace

bool Tracker::WaitUntil(const struct timespec* until) {
  for (;;) {
    if (exit_state_.load(std::memory_order_acquire) != kExitNone) return false;
    if (stop_watchdog_.load(std::memory_order_acquire)) return false;
    if (exit_reach_state_.load(std::memory_order_acquire) == kReachRequested) {
      return true;
    }
    FutexWait(&exit_state_, kExitNone, until);
    if (exit_state_.load(std::memory_order_acquire) != kExitNone) return false;
    if (stop_watchdog_.load(std::memory_order_acquire)) return false;
    if (exit_reach_state_.load(std::memory_order_acquire) == kReachRequested) {
      return true;
    }
    if (until == nullptr) continue;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > until->tv_sec ||
        (now.tv_sec == until->tv_sec && now.tv_nsec >= until->tv_nsec)) {
      return true;
    }
  }
}

void* Tracker::WatchdogMain(void* arg) {
  auto* self = static_cast<Tracker*>(arg);
  if (self->options_.reachability != kReachOff) {
    // Under start_mu_, which fork's prepare handler takes: a child never
    // inherits this half done (dl_iterate_phdr's lock, malloc).
    pthread_mutex_lock(&self->start_mu_);
    FindAgentMemory();
    pthread_mutex_unlock(&self->start_mu_);
    CurrentStackBounds(&self->watchdog_stack_lo_, &self->watchdog_stack_hi_);
  }
  bool any_live =
      !self->options_.metrics.empty() || self->options_.report_interval > 0;
  for (int f = 0; f < kNumFamilies; ++f) {
    any_live |= self->threshold_ns_[f] > 0;
  }
  int64_t period_ns = self->options_.ScanPeriodMs() * 1000000;
  const int64_t report_every_ns = self->options_.report_interval * 1000000;
  int64_t next_report_ns = NowNs() + report_every_ns;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  AddNs(&next, period_ns);
  while (self->WaitUntil(any_live ? &next : nullptr)) {
    if (self->exit_reach_state_.load(std::memory_order_acquire) ==
        kReachRequested) {
      pthread_mutex_lock(&self->scan_run_mu_);  // a test's Scan may run
      self->ReachPass(/*at_exit=*/true);
      pthread_mutex_unlock(&self->scan_run_mu_);
      self->exit_reach_state_.store(kReachDone, std::memory_order_release);
      FutexWakeAll(&self->exit_reach_state_);
      continue;  // the program is exiting: no more live scans
    }
    self->Scan();
    self->table_.Shrink();  // after a burst: memory back, lazily
    if (auto hook = self->scan_hook_.load(std::memory_order_acquire)) hook();
    if (report_every_ns > 0 && NowNs() >= next_report_ns) {
      next_report_ns += report_every_ns;
      self->PeriodicReport();
    }
    AddNs(&next, period_ns);
  }
  if (self->stop_watchdog_.load(std::memory_order_acquire) &&
      self->exit_state_.load(std::memory_order_acquire) == kExitNone) {
    // A `leakwatch detach`: the agent goes inert; a later session starts a
    // new watchdog. (An exit requested meanwhile finds none running and
    // writes its report itself.)
    pthread_mutex_lock(&self->start_mu_);
    self->started_.store(false, std::memory_order_release);
    self->watchdog_running_.store(false, std::memory_order_release);
    pthread_mutex_unlock(&self->start_mu_);
    return nullptr;
  }
  self->WriteExitReport();
  self->exit_state_.store(kExitWritten, std::memory_order_release);
  FutexWakeAll(&self->exit_state_);
  return nullptr;
}

void Tracker::ExitPoint(bool main_returned) {
  PromoteTentative();  // nothing followed them: the interpreter's
  if (exit_point_done_.exchange(true)) return;
  uintptr_t lo = 0, hi = 0;
  if (main_returned && CurrentStackBounds(&lo, &hi)) {
    exit_stack_lo_ = lo;
    exit_stack_hi_ = hi;
  }
  if (options_.reachability == kReachOff ||
      !watchdog_running_.load(std::memory_order_acquire) ||
      pthread_equal(pthread_self(), watchdog_thread_)) {
    return;
  }
  // As Exit(): nothing here allocates (exit() may come from a signal handler
  // that interrupted malloc); the watchdog scans, this thread waits, bounded.
  exit_reach_state_.store(kReachRequested, std::memory_order_release);
  FutexWakeAll(&exit_state_);
  const int64_t give_up = NowNs() + kExitReachWaitMs * 1000000;
  while (exit_reach_state_.load(std::memory_order_acquire) != kReachDone &&
         NowNs() < give_up) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    AddNs(&until, 50000000);
    FutexWait(&exit_reach_state_, kReachRequested, &until);
  }
}

void Tracker::Exit() {
  PromoteTentative();
  if (exit_done_.exchange(true)) return;
  exiting_.store(true, std::memory_order_release);
  if (!watchdog_running_.load(std::memory_order_acquire) ||
      pthread_equal(pthread_self(), watchdog_thread_)) {
    WriteExitReport();
    return;
  }
  // Nothing below allocates: see the comment in tracker.h.
  exit_state_.store(kExitRequested, std::memory_order_release);
  FutexWakeAll(&exit_state_);
  uint64_t progress = exit_progress_.load(std::memory_order_relaxed);
  int64_t stalled_since = NowNs();
  while (exit_state_.load(std::memory_order_acquire) != kExitWritten) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    AddNs(&until, 50000000);
    FutexWait(&exit_state_, kExitRequested, &until);
    int64_t now = NowNs();
    uint64_t seen = exit_progress_.load(std::memory_order_relaxed);
    if (seen != progress) {
      progress = seen;
      stalled_since = now;
    } else if (now - stalled_since > kExitStallMs * 1000000 &&
               exit_state_.load(std::memory_order_acquire) != kExitWritten) {
      if (EventSink* sink = sink_.load(std::memory_order_acquire)) {
        sink->OnExitAbandoned((now - stalled_since) / 1000000);
      }
      return;
    }
  }
}

void Tracker::WriteExitReport() {
  ExitSnapshot snapshot;
  snapshot.now_ns = NowNs();
  // At most ~0.5 s in all for the shard locks: exit may come from a signal
  // handler that interrupted a thread inside a hook.
  int64_t deadline = WallClockNs() + 500000000;
  EventSink* sink = sink_.load(std::memory_order_acquire);
  TakeSnapshot(&snapshot, /*past_threshold_only=*/false, deadline,
               sink != nullptr && sink->WantsSamples() ? sink : nullptr);
  if (notes_mu_.LockBefore(deadline)) {
    snapshot.notes.swap(notes_);
    notes_mu_.Unlock();
  }
  exit_progress_.fetch_add(1, std::memory_order_relaxed);
  if (sink != nullptr) sink->OnExit(snapshot);
}

void Tracker::TakeSnapshot(ExitSnapshot* snapshot, bool past_threshold_only,
                           int64_t lock_deadline_ns,
                           const EventSink* sample_for) {
  // Running threads are reported only for growing sites: every program exits
  // with its pool running.
  ScrubbedVector<Record> running;
  ScrubbedVector<Record> held;
  // Every tracked key (parents alive), with its acquisition time and
  // reachability verdict.
  struct Parent {
    int64_t acquired_ns;
    uint8_t reach;
  };
  ScrubbedHashMap<uintptr_t, Parent> keys;
  SiteMap thread_sites;
  const int64_t thread_threshold =
      threshold_ns_[static_cast<int>(Family::kThread)];
  const int64_t now = snapshot->now_ns;
  std::optional<SiteCounter> sample_sites;
  if (sample_for != nullptr) sample_sites.emplace(*sample_for);
  ScrubbedVector<uintptr_t> in_call;
  table_.KeysInCall(&in_call);
  snapshot->shards_skipped = table_.ForEach(
      [&](Record& r) {
        keys.emplace(r.key, Parent{r.acquired_ns, r.reach});
        if (sample_sites && !(r.flags & kInherited)) {  // as a scan counts
          ++snapshot->sample.open[r.kind->index];
          sample_sites->Count(r);
        }
        if (r.flags & (kInherited | kIgnored)) return;
        if (IsRunningThread(r)) {
          running.push_back(r);
          if (now - r.acquired_ns >= thread_threshold) {
            thread_sites[SiteKey(r)].Add(r);
          }
          return;
        }
        held.push_back(r);
        if (!in_call.empty() &&
            std::binary_search(in_call.begin(), in_call.end(), r.key)) {
          held.back().flags |= kInCall;  // noted in a thread's young slot
        }
      },
      lock_deadline_ns, &exiting_);
  if (shutdown_begun_.load(std::memory_order_acquire)) {
    // Released by the interpreter's shutdown: held as the script left them.
    pthread_mutex_lock(&shutdown_mu_);
    for (const Record& r : shutdown_released_) {
      keys.emplace(r.key, Parent{r.acquired_ns, r.reach});
      if (!(r.flags & (kInherited | kIgnored))) held.push_back(r);
    }
    pthread_mutex_unlock(&shutdown_mu_);
  }
  const int64_t conn_threshold = threshold_ns_[static_cast<int>(Family::kConn)];
  ConnSites sites;
  for (const Record& r : held) {
    if (FamilyUsesIdleTime(r.kind->family)) sites.Add(r);
  }
  pthread_mutex_lock(&scan_mu_);
  sites.Finish(&site_gap_);
  pthread_mutex_unlock(&scan_mu_);
  // Each connection's own finding, for its results (script interpreters).
  const bool script_interpreter = IsScriptInterpreter();
  ScrubbedHashMap<uintptr_t, Finding> conn_findings;
  for (const Record& r : held) {
    if (script_interpreter && FamilyUsesIdleTime(r.kind->family)) {
      conn_findings[r.key] = Judge(r, now, false, sites.For(r, conn_threshold));
    }
  }
  // Each handle judged by its rule; statements judged by growth (as the scan
  // does, MarkOverdue) also counted towards their site's growth; the
  // connections of a growing site (idle, never reused) are all leaks, the
  // youngest too.
  const int64_t stmt_threshold = threshold_ns_[static_cast<int>(Family::kStmt)];
  ScrubbedVector<Held> judged;
  std::vector<bool> idle_unused;  // of `judged`: counted in `unused`
  SiteMap unused;                 // statements
  SiteMap unused_conns;           // connections
  for (const Record& r : held) {
    auto parent = HasParent(r) ? keys.find(r.parent) : keys.end();
    const bool parent_alive = parent != keys.end();
    if (HasParent(r) && r.kind->ends_with_parent &&
        (!parent_alive || parent->second.acquired_ns > r.acquired_ns)) {
      // Its session ended with its parent: not held (a scan would have
      // dropped it from the table), in the sample neither.
      if (sample_sites && !(r.flags & kReleasedAtShutdown)) {
        --snapshot->sample.open[r.kind->index];
        sample_sites->Count(r, -1);
      }
      continue;
    }
    const ConnContext ctx = sites.For(r, conn_threshold);
    Finding finding = Judge(r, now, parent_alive, ctx);
    if (script_interpreter) {
      finding = WithItsConnection(r, finding, conn_findings);
    }
    Record copy = r;
    if (parent_alive && r.kind->ends_with_parent) {
      // No memory of its own: as reachable as its parent (lost with it).
      const Reach reach = static_cast<Reach>(parent->second.reach);
      copy.reach = static_cast<uint8_t>(
          reach == Reach::kLost ? Reach::kIndirectlyLost : reach);
    }
    const bool idle =
        StatementIdleNeverReused(r, finding, parent_alive, now, stmt_threshold);
    if (idle) unused[SiteKey(r)].Add(r);
    if (FamilyUsesIdleTime(r.kind->family) &&
        IdleNeverReused(r, ctx, now, conn_threshold)) {
      unused_conns[SiteKey(r)].Add(r);
    }
    judged.push_back(Held{copy, finding});
    idle_unused.push_back(idle);
  }
  for (size_t i = 0; i < judged.size(); ++i) {
    Held& j = judged[i];
    const uint64_t key = SiteKey(j.record);
    if (idle_unused[i]) {
      const SiteAggregate& site = unused[key];
      if (IsGrowing(Family::kStmt, site.count, site.span())) {
        j.finding = Finding::kGrowingSite;
      }
    } else if (j.finding == Finding::kNone &&
               FamilyUsesIdleTime(j.record.kind->family) &&
               sites.For(j.record, conn_threshold).site_gap_ns == 0) {
      auto site = unused_conns.find(key);
      if (site != unused_conns.end() &&
          IsGrowing(Family::kConn, site->second.count, site->second.span())) {
        j.finding = Finding::kGrowingSite;
      }
    }
  }
  for (const Held& j : judged) {
    const Record& r = j.record;
    const Finding finding = j.finding;
    if (past_threshold_only && finding == Finding::kNone) continue;
    Held h{r, finding};
    if (!past_threshold_only) {
      // At exit a lost handle is a leak however young; one still reachable
      // that no rule convicts is listed apart (README, "exit report").
      // (Its finding stays the rule's: a young lost handle is not "past
      // its threshold"; the report reads the verdict from the record.)
      // One the interpreter released before any scan could see it (Perl's
      // last scope) has no verdict: only a rule convicts it.
      const Reach reach = static_cast<Reach>(r.reach);
      const bool unseen =
          (r.flags & kReleasedAtShutdown) && reach == Reach::kUnknown;
      h.convicted = finding != Finding::kNone ||
                    (reach != Reach::kReachable && !unseen) ||
                    options_.exit_reachable == kExitReachableCount;
      if (!h.convicted && options_.exit_reachable == kExitReachableOff) {
        continue;
      }
    }
    snapshot->held.push_back(h);
  }
  for (const Record& r : running) {
    auto site = thread_sites.find(SiteKey(r));
    if (site != thread_sites.end() &&
        IsGrowing(Family::kThread, site->second.count, site->second.span())) {
      snapshot->held.push_back(Held{r, Finding::kGrowingSite});
    }
  }
  snapshot->totals = Totals();
  for (int k = 0; k < kMaxKinds; ++k) {
    snapshot->kinds[k] = kinds_[k].load(std::memory_order_relaxed);
  }
  snapshot->dropped = table_.dropped();
  if (sample_sites) {
    std::copy(std::begin(snapshot->kinds), std::end(snapshot->kinds),
              std::begin(snapshot->sample.kinds));
    sample_sites->Fill(&snapshot->sample);
    snapshot->sampled = true;
  }
}

void Tracker::PeriodicReport() { ReportHeldNow(&EventSink::OnPeriodic); }

void Tracker::ReportHeldNow(void (EventSink::*deliver)(const ExitSnapshot&)) {
  if (exiting_.load(std::memory_order_acquire)) return;
  ExitSnapshot snapshot;
  snapshot.now_ns = NowNs();
  TakeSnapshot(&snapshot, /*past_threshold_only=*/true, 0);
  if (EventSink* sink = sink_.load(std::memory_order_acquire)) {
    (sink->*deliver)(snapshot);
  }
}

void Tracker::ForkPrepare() {
  Tracker& t = *g_tracker;
  if (EventSink* sink = t.sink_.load(std::memory_order_acquire)) {
    sink->PrepareFork();
  }
  pthread_mutex_lock(&t.start_mu_);
  t.notes_mu_.Lock();
  t.stacks_.LockForFork();
  t.strings_.LockForFork();
  t.table_.LockAllForFork();
  // Leaf locks of the watchdog's: a child must not inherit them held.
  pthread_mutex_lock(&t.scan_mu_);
  t.reach_mu_.Lock();
  pthread_mutex_lock(&t.shutdown_mu_);
}

void Tracker::ForkParent() {
  Tracker& t = *g_tracker;
  pthread_mutex_unlock(&t.shutdown_mu_);
  t.reach_mu_.Unlock();
  pthread_mutex_unlock(&t.scan_mu_);
  t.table_.UnlockAllAfterFork();
  t.strings_.UnlockAfterFork();
  t.stacks_.UnlockAfterFork();
  t.notes_mu_.Unlock();
  pthread_mutex_unlock(&t.start_mu_);
  if (EventSink* sink = t.sink_.load(std::memory_order_acquire)) {
    sink->ParentAfterFork();
  }
}

void Tracker::ForkChild() {
  Tracker& t = *g_tracker;
  tracker_internal::t_tid = 0;
  // A scan the parent's watchdog was running does not go on here.
  pthread_mutex_init(&t.scan_run_mu_, nullptr);
  t.shutdown_released_.clear();  // the parent's
  t.tentative_released_.clear();
  t.tentative_count_.store(0, std::memory_order_relaxed);
  pthread_mutex_unlock(&t.shutdown_mu_);
  t.reach_mu_.Unlock();
  pthread_mutex_unlock(&t.scan_mu_);
  t.table_.UnlockAllAfterFork();
  t.table_.AdoptYoungAfterFork();
  t.strings_.UnlockAfterFork();
  t.stacks_.UnlockAfterFork();
  t.notes_.clear();
  t.notes_dropped_ = 0;
  t.notes_mu_.Unlock();
  // The watchdog thread does not exist in the child: start it again lazily.
  t.started_.store(false, std::memory_order_relaxed);
  t.watchdog_running_.store(false, std::memory_order_relaxed);
  t.exit_state_.store(kExitNone, std::memory_order_relaxed);
  pthread_mutex_unlock(&t.start_mu_);
  // What the parent holds is the parent's business.
  t.table_.ForEach([](Record& r) { r.flags |= kInherited; });
  if (EventSink* sink = t.sink_.load(std::memory_order_acquire)) {
    sink->ChildAfterFork();
  }
}

}  // namespace leakwatch
