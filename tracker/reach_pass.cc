// The tracker's side of reachability (tracker/reach.h): which handles a scan
// looks at, what memory of the agent's it must not read, and where its
// verdicts go (Record::reach). Runs on the watchdog thread only.
//
// Nothing here allocates from the host's malloc while a scan is being
// prepared: the keys live in mappings of their own (which the scan is told
// to skip, like every other copy of a key the agent keeps: its table's
// records, its globals and TLS), so the scan never counts the agent's own
// bookkeeping as a pointer to a handle. At exit this runs while another
// thread may sit in a signal handler that interrupted malloc.
#include <link.h>

#include <algorithm>

#include "tracker/clock.h"
#include "tracker/mapped_vector.h"
#include "tracker/reach.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

template <typename T>
MemoryRange RangeOf(const MappedVector<T>& v) {
  MemoryRange r;
  v.range(&r.begin, &r.end);
  return r;
}

MappedVector<uintptr_t> g_keys;
MappedVector<Reach> g_verdicts;
MappedVector<MemoryRange> g_exclude;
// The agent's writable segments (globals, .bss: the table's shards and
// their recently released records), found once.
MemoryRange g_module[8];
size_t g_module_count = 0;
bool g_module_known = false;

int FindModule(struct dl_phdr_info* info, size_t, void*) {
  const auto self = reinterpret_cast<uintptr_t>(&g_module_known);
  bool ours = false;
  for (int i = 0; i < info->dlpi_phnum && !ours; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    ours = ph.p_type == PT_LOAD && self >= begin && self < begin + ph.p_memsz;
  }
  if (!ours) return 0;
  for (int i = 0; i < info->dlpi_phnum && g_module_count < 8; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_W)) continue;
    uintptr_t begin = (info->dlpi_addr + ph.p_vaddr) & ~uintptr_t{4095};
    uintptr_t end =
        (info->dlpi_addr + ph.p_vaddr + ph.p_memsz + 4095) & ~uintptr_t{4095};
    g_module[g_module_count++] = {begin, end};
  }
  return 1;
}

void AddExclusion(uintptr_t begin, uintptr_t end, void*) {
  g_exclude.push_back({begin, end});
}

}  // namespace

void Tracker::FindAgentMemory() {
  if (g_module_known) return;
  PrepareReachability();
  dl_iterate_phdr(&FindModule, nullptr);
  g_module_known = true;
}

bool Tracker::WantsReach(const Record& r, int64_t now_ns, bool at_exit) const {
  // A thread's key is no pointer the program keeps; a server-side handle's
  // key is no address at all.
  if ((r.flags & (kInherited | kIgnored)) ||
      r.kind->family == Family::kThread || r.kind->ends_with_parent) {
    return false;
  }
  if (at_exit) return true;
  const Reach reach = static_cast<Reach>(r.reach);
  // Lost is final until the handle is used again (MarkActive).
  if (reach == Reach::kLost || reach == Reach::kIndirectlyLost) return false;
  if (ReachDueNs(r) > now_ns || (r.flags & kInCall)) return false;
  const int64_t threshold = threshold_ns_[static_cast<int>(r.kind->family)];
  if (threshold <= 0) return false;
  const int64_t since =
      FamilyUsesIdleTime(r.kind->family) ? r.active_ns : r.acquired_ns;
  // In a call noted in a thread's young slot: as kInCall.
  return now_ns - since >= threshold && !table_.InCallOnAnyThread(r.key);
}

void Tracker::ReachPass(bool at_exit) {
  if (options_.reachability == kReachOff) return;
  if (!at_exit && (options_.reachability != kReachOn || reach_failed_)) return;
  const int64_t now = NowNs();
  if (!at_exit && now < next_reach_ns_) return;
  struct Collect {
    const Tracker* self;
    int64_t now;
    bool at_exit;
  } collect{this, now, at_exit};
  g_keys.clear();
  // One pointer captured: std::function keeps it without allocating.
  const Collect* c = &collect;
  table_.ForEach(
      [c](Record& r) {
        if (c->self->WantsReach(r, c->now, c->at_exit)) g_keys.push_back(r.key);
      },
      at_exit ? WallClockNs() + 500000000 : 0, at_exit ? nullptr : &exiting_);
  size_t n = g_keys.size();
  if (n == 0) return;
  uintptr_t* keys = g_keys.data();
  std::sort(keys, keys + n);
  n = static_cast<size_t>(std::unique(keys, keys + n) - keys);
  g_keys.resize(n);
  if (!g_verdicts.reserve(n)) return;
  g_verdicts.resize(n);
  g_exclude.clear();
  for (size_t i = 0; i < g_module_count; ++i) g_exclude.push_back(g_module[i]);
  table_.ForEachRecordMapping(&AddExclusion, nullptr);
  if (at_exit && exit_stack_hi_ > exit_stack_lo_) {
    g_exclude.push_back({exit_stack_lo_, exit_stack_hi_});
  }
  if (watchdog_stack_hi_ > watchdog_stack_lo_) {
    g_exclude.push_back({watchdog_stack_lo_, watchdog_stack_hi_});
  }
  g_exclude.push_back(RangeOf(g_keys));
  g_exclude.push_back(RangeOf(g_verdicts));
  const MemoryRange exclude_self = RangeOf(g_exclude);
  g_exclude.push_back(exclude_self);
  ReachStats stats;
  const bool made = ScanReachability(
      keys, n, g_verdicts.data(), g_exclude.data(), g_exclude.size(),
      at_exit ? kExitReachScanMs : 10000, &stats);
  const int64_t done = NowNs();
  reach_mu_.Lock();
  if (made) {
    ++reach_totals_.scans;
    reach_totals_.last_pause_ns = stats.pause_ns;
    reach_totals_.max_pause_ns =
        std::max(reach_totals_.max_pause_ns, stats.pause_ns);
  } else {
    ++reach_totals_.failures;
    reach_totals_.failure = stats.failure;
  }
  reach_mu_.Unlock();
  if (!made) {
    reach_failed_ = true;  // ptrace refused, or no room: no more live scans
    return;
  }
  // At most a tenth of the time scanning (a handle waiting for its verdict
  // is reported when the next scan has looked at it).
  next_reach_ns_ = done + std::max<int64_t>(50000000, 10 * (done - now));
  const Reach* verdicts = g_verdicts.data();
  for (size_t i = 0; i < n; ++i) {
    const Reach verdict = verdicts[i];
    table_.Update(keys[i], [&](Record& r) {
      // A handle acquired at that address after the keys were taken is
      // another one.
      if (r.acquired_ns > now || r.kind->family == Family::kThread) return;
      r.reach = static_cast<uint8_t>(verdict);
      // A reachable one is looked at again after half its age (a minute's
      // pool connection in 30 s, an hour's in 5 min).
      const int64_t age = done - r.acquired_ns;
      SetReachDueNs(
          r, done + std::clamp<int64_t>(age / 2, 1000000000, 300000000000));
    });
  }
}

bool Tracker::AwaitsVerdict(const Record& r, int64_t now_ns) const {
  return options_.reachability == kReachOn && !reach_failed_ &&
         static_cast<Reach>(r.reach) == Reach::kUnknown &&
         WantsReach(r, now_ns, /*at_exit=*/false);
}

ReachTotals Tracker::reach_totals() {
  reach_mu_.Lock();
  ReachTotals totals = reach_totals_;
  reach_mu_.Unlock();
  return totals;
}

}  // namespace leakwatch
