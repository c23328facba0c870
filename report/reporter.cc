#include "report/reporter.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

#include "report/metrics.h"
#include "tracker/clock.h"
#include "tracker/reach.h"

namespace leakwatch {
namespace {

// RAII for the reporter's mutex; with a deadline, waits at most that long.
class ReportLock {
 public:
  ReportLock(pthread_mutex_t* mu, int deadline_ms) : mu_(mu) {
    if (deadline_ms <= 0) {
      pthread_mutex_lock(mu_);
      held_ = true;
      return;
    }
    int64_t until = WallClockNs() + int64_t{deadline_ms} * 1000000;
    struct timespec ts = {static_cast<time_t>(until / 1000000000),
                          static_cast<long>(until % 1000000000)};
    held_ = pthread_mutex_timedlock(mu_, &ts) == 0;
  }
  ~ReportLock() {
    if (held_) pthread_mutex_unlock(mu_);
  }
  ReportLock(const ReportLock&) = delete;
  ReportLock& operator=(const ReportLock&) = delete;

 private:
  pthread_mutex_t* mu_;
  bool held_ = false;
};

}  // namespace

Reporter::Reporter(Tracker& tracker, Log& log)
    : Reporter(tracker, log, tracker.options().format) {}

Reporter::Reporter(Tracker& tracker, Log& log, Format format)
    : tracker_(tracker),
      log_(log),
      format_(format),
      context_(tracker, symbolizer_),
      renderer_(format == kFormatJson ? MakeJsonRenderer(context_)
                                      : MakeTextRenderer(context_)) {
  symbolizer_.set_strings(&tracker_.strings());
  const std::string& path = tracker_.options().suppressions;
  if (!path.empty()) {
    std::vector<std::string> errors;
    suppressions_.Load(path, &errors);
    for (const std::string& e : errors) WriteAll(STDERR_FILENO, e + "\n");
  }
}

int Reporter::SuppressionFor(const Record& r) {
  if (suppressions_.empty()) return -1;
  auto [it, inserted] = suppression_by_site_.try_emplace(SiteKey(r), -1);
  if (!inserted) return it->second;
  std::vector<const SymbolizedFrame*> frames;
  Depot<uintptr_t>::View stack = tracker_.stacks().Get(r.stack_id);
  for (uint32_t i = 0; i < stack.size; ++i) {
    // Every source-level frame, inlined ones too (pointers into the cache).
    for (const SymbolizedFrame& f :
         symbolizer_.SymbolizeInlined(stack.data[i])) {
      frames.push_back(&f);
    }
  }
  std::string start = r.kind->family == Family::kThread && r.code != 0
                          ? context_.StartRoutine(r.code)
                          : "";
  it->second = suppressions_.Match(*r.kind, frames, start);
  return it->second;
}

ScanModel Reporter::BuildScanModel(const ScanEvents& events) {
  ScanModel model;
  model.now_ns = events.now_ns;
  // Warnings, site by site in order of first appearance.
  std::map<uint64_t, size_t> site_index;
  for (const Held& h : events.overdue) {
    if (SuppressionFor(h.record) >= 0) continue;
    auto [it, added] =
        site_index.try_emplace(SiteKey(h.record), model.sites.size());
    if (added) {
      model.sites.emplace_back();
      model.sites.back().stack_new =
          h.record.stack_id != 0 && sites_shown_.insert(it->first).second;
    }
    ScanModel::Site& site = model.sites[it->second];
    if (site.shown.size() < ScanModel::kPerSitePerScan) {
      site.shown.push_back(h);
    } else {
      ++site.more;
    }
  }
  for (const SiteGrowth& g : events.growing) {
    if (SuppressionFor(g.oldest) >= 0) continue;
    sites_shown_.insert(SiteKey(g.oldest));  // the warning shows its stack
    model.growing.push_back(g);
  }
  // Notes (after the warnings: a note may be about a handle warned in this
  // very scan); a suppressed handle's warning was not shown either.
  std::map<std::pair<uint64_t, int>, size_t> more_entry;  // -> index + 1
  std::map<std::pair<uint64_t, int>, size_t> seen;
  for (const LiveNote& note : events.notes) {
    if (SuppressionFor(note.record) >= 0) continue;
    std::pair<uint64_t, int> key{SiteKey(note.record), note.type};
    if (seen[key]++ < ScanModel::kPerSitePerScan) {
      model.notes.push_back({note, 0});
      continue;
    }
    size_t& entry = more_entry[key];
    if (entry == 0) {
      model.notes.push_back({note, 0});
      entry = model.notes.size();
    }
    ++model.notes[entry - 1].more;
  }
  model.notes_dropped = events.notes_dropped;
  return model;
}

HeldModel Reporter::BuildHeldModel(const ExitSnapshot& snapshot, bool at_exit) {
  HeldModel model;
  model.at_exit = at_exit;
  model.now_ns = snapshot.now_ns;
  if (at_exit) {
    ScanEvents pending;
    pending.now_ns = snapshot.now_ns;
    pending.notes = snapshot.notes;
    model.pending = BuildScanModel(pending);
  }
  // Suppressed handles are counted, not shown.
  model.held.reserve(snapshot.held.size());
  for (const Held& h : snapshot.held) {
    int rule = SuppressionFor(h.record);
    if (rule < 0) {
      (h.convicted ? model.held : model.reachable).push_back(h);
    } else if (at_exit) {
      suppressions_.Hit(rule, 1);
    }
  }
  GroupHeld(model.held, &model.groups, &model.per_kind);
  GroupHeld(model.reachable, &model.reachable_groups,
            &model.reachable_per_kind);
  if (!at_exit) return model;
  unsuppressed_at_exit_ = model.held.size();
  for (const Suppressions::Rule& rule : suppressions_.rules()) {
    if (rule.hits == 0) continue;
    model.suppressed += rule.hits;
    model.suppressions_used.push_back(rule);
  }
  model.misuses = tracker_.misuse_count();
  model.unknown_releases = tracker_.unknown_releases();
  model.shards_skipped = snapshot.shards_skipped;
  model.dropped = snapshot.dropped;
  model.totals = snapshot.totals;
  std::copy(std::begin(snapshot.kinds), std::end(snapshot.kinds),
            std::begin(model.kinds));
  return model;
}

// Groups model->held by kind and acquisition stack, largest group first.
void Reporter::GroupHeld(
    const ScrubbedVector<Held>& held, std::vector<HeldModel::Group>* out,
    std::vector<std::pair<std::string, size_t>>* out_per_kind) {
  // Connections kept busy by an unbuffered result still held.
  ScrubbedMap<uintptr_t, size_t> pinned_by;
  for (const Held& h : held) {
    const Record& r = h.record;
    if ((r.flags & kPinsParent) && r.parent != 0) ++pinned_by[r.parent];
  }
  std::map<uint64_t, HeldModel::Group> groups;
  for (const Held& h : held) {
    const Record& r = h.record;
    auto [it, inserted] = groups.try_emplace(SiteKey(r));
    HeldModel::Group& g = it->second;
    if (inserted || r.acquired_ns < g.oldest_acquired_ns) {
      g.kind = r.kind;
      g.stack_id = r.stack_id;
      g.oldest_acquired_ns = r.acquired_ns;
      g.example = &h;
    }
    g.members.push_back(&h);
    if (r.kind->family == Family::kThread && !(r.flags & kExited)) ++g.running;
    if (PastThreshold(h.finding, r.kind->family)) ++g.past_threshold;
    if (h.finding == Finding::kGrowingSite &&
        r.kind->family != Family::kThread) {
      ++g.growing;
    }
    if (r.reach == static_cast<uint8_t>(Reach::kLost)) ++g.lost;
    if (r.reach == static_cast<uint8_t>(Reach::kIndirectlyLost)) {
      ++g.indirectly_lost;
    }
    if (r.flags & kReleasedAtShutdown) ++g.at_shutdown;
    g.pinned += pinned_by.count(r.key);
  }
  for (auto& [key, g] : groups) {
    auto pins = pinned_by.find(g.example->record.key);
    g.example_pins = pins != pinned_by.end() ? pins->second : 0;
    out->push_back(std::move(g));
  }
  std::sort(out->begin(), out->end(),
            [](const HeldModel::Group& a, const HeldModel::Group& b) {
              if (a.members.size() != b.members.size()) {
                return a.members.size() > b.members.size();
              }
              return a.oldest_acquired_ns < b.oldest_acquired_ns;
            });
  std::map<std::string, size_t> per_kind;
  for (const Held& h : held) ++per_kind[h.record.kind->name];
  out_per_kind->assign(per_kind.begin(), per_kind.end());
  std::sort(out_per_kind->begin(), out_per_kind->end(),
            [](const auto& a, const auto& b) {
              return a.second != b.second ? a.second > b.second
                                          : a.first < b.first;
            });
}

std::string Reporter::FormatScan(const ScanEvents& events) {
  return renderer_->RenderScan(BuildScanModel(events));
}

std::string Reporter::FormatExit(const ExitSnapshot& snapshot) {
  return renderer_->RenderHeld(BuildHeldModel(snapshot, /*at_exit=*/true));
}

std::string Reporter::FormatPeriodic(const ExitSnapshot& snapshot) {
  return renderer_->RenderHeld(BuildHeldModel(snapshot, /*at_exit=*/false));
}

std::string Reporter::FormatMisuse(const Misuse& misuse) {
  return renderer_->RenderMisuse(misuse);
}

void Reporter::WriteMetrics(const MetricsSnapshot& snapshot) {
  MetricsInput input = MetricsFromSnapshot(snapshot, [this](uint32_t id) {
    return std::string(context_.String(id));
  });
  input.pid = getpid();
  input.program = ProgramName();
  input.timestamp_ms = WallClockMs();
  std::string error;
  std::string path = Log::ExpandPath(tracker_.options().metrics, getpid());
  if (!WriteMetricsFile(path, FormatMetrics(input), &error) &&
      !metrics_error_said_) {
    metrics_error_said_ = true;
    WriteAll(STDERR_FILENO,
             "leakwatch: cannot write LEAKWATCH_METRICS: " + error + "\n");
  }
}

void Reporter::OnScan(const ScanEvents& events) {
  ReportLock lock(&mu_, 0);
  std::string text = FormatScan(events);
  if (!text.empty()) log_.Write(text);
  if (events.metrics != nullptr) WriteMetrics(*events.metrics);
}

void Reporter::OnExit(const ExitSnapshot& snapshot) {
  // The watchdog may be in the middle of a scan; wait for it a little. If the
  // lock cannot be had (a thread died holding it), report anyway: the
  // symbolizer is then used without the lock, which is only unsafe if that
  // thread is still running, and it is not after exit started.
  ReportLock lock(&mu_, 1000);
  std::string text = FormatExit(snapshot);
  if (!text.empty()) log_.Write(text);
  // A finished process's gauges would say forever what it held at the end.
  if (!tracker_.options().metrics.empty()) {
    unlink(Log::ExpandPath(tracker_.options().metrics, getpid()).c_str());
  }
}

void Reporter::OnExitAbandoned(int64_t waited_ms) {
  // No allocation here: this runs on the exiting thread.
  char line[320];
  int n = format_ == kFormatJson
              ? snprintf(line, sizeof line,
                         "{\"type\":\"exit_abandoned\",\"pid\":%d,"
                         "\"stalled_ms\":%lld}\n",
                         static_cast<int>(context_.pid()),
                         static_cast<long long>(waited_ms))
              : snprintf(line, sizeof line,
                         "leakwatch[%d]: exit report abandoned: the report "
                         "thread made no progress for %lld ms (a lock it "
                         "needs is held by a thread that will not run again: "
                         "exit() from a signal handler, or a thread stuck "
                         "in the dynamic loader or malloc)\n",
                         static_cast<int>(context_.pid()),
                         static_cast<long long>(waited_ms));
  if (n > 0) {
    log_.WriteIfOpen(
        std::string_view(line, std::min<size_t>(n, sizeof line - 1)));
  }
}

void Reporter::OnPeriodic(const ExitSnapshot& snapshot) {
  ReportLock lock(&mu_, 0);
  std::string text = FormatPeriodic(snapshot);
  if (!text.empty()) log_.Write(text);
}

void Reporter::OnDemand(const ExitSnapshot& snapshot) {
  ReportLock lock(&mu_, 0);
  HeldModel model = BuildHeldModel(snapshot, /*at_exit=*/false);
  model.on_demand = true;
  model.session_ns = tracker_.session_ns();
  model.unknown_releases = tracker_.unknown_releases();
  model.totals = snapshot.totals;
  std::copy(std::begin(snapshot.kinds), std::end(snapshot.kinds),
            std::begin(model.kinds));
  log_.Write(renderer_->RenderHeld(model));
}

void Reporter::OnMisuse(const Misuse& misuse) {
  // Inside the program's call: wait a little for the watchdog if it is
  // writing, but never block the program for long.
  ReportLock lock(&mu_, 500);
  log_.Write(FormatMisuse(misuse));
}

void Reporter::OnNotice(std::string_view what, std::string_view text) {
  ReportLock lock(&mu_, 500);
  log_.Write(renderer_->RenderNotice(what, text));
}

void Reporter::PrepareFork() { pthread_mutex_lock(&mu_); }
void Reporter::ParentAfterFork() { pthread_mutex_unlock(&mu_); }
void Reporter::ChildAfterFork() {
  context_.set_pid(getpid());
  sites_shown_.clear();
  pthread_mutex_unlock(&mu_);
}

}  // namespace leakwatch
