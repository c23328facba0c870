#include "report/reporter.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
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
    : Reporter(tracker, log, tracker.options().format,
               tracker.options().json_log) {}

Reporter::Reporter(Tracker& tracker, Log& log, Format format,
                   const std::string& json_log)
    : tracker_(tracker),
      log_(log),
      format_(format),
      context_(tracker, symbolizer_),
      renderer_(format == kFormatJson ? MakeJsonRenderer(context_)
                                      : MakeTextRenderer(context_)) {
  if (!json_log.empty()) {
    json_log_ = std::make_unique<Log>(json_log, "LEAKWATCH_JSON_LOG",
                                      /*or_stderr=*/false);
    if (format != kFormatJson) json_renderer_ = MakeJsonRenderer(context_);
  }
  if (format == kFormatJson) {
    json_ = renderer_.get();
  } else if (json_renderer_ != nullptr) {
    json_ = json_renderer_.get();
  }
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

template <typename Render>
std::string Reporter::ForJsonLog(const std::string& text, Render&& render) {
  if (json_log_ == nullptr) return "";
  return json_renderer_ != nullptr ? render(*json_renderer_) : text;
}

void Reporter::WriteBoth(const std::string& text, const std::string& json) {
  if (!text.empty()) log_.Write(text);
  if (!json.empty()) json_log_->Write(json);
}

void Reporter::AddSample(const std::string& sample, bool first,
                         std::string* text, std::string* json) {
  if (format_ == kFormatJson) text->insert(first ? 0 : text->size(), sample);
  if (json_log_ != nullptr) json->insert(first ? 0 : json->size(), sample);
}

void Reporter::WatchSites(const ScanModel& model) {
  auto watch = [this](uint64_t key) {
    // The first kMaxSites sites warned about: a sample stays one short
    // line, and the scan's count of them one probe per record.
    int n = watched_count_.load(std::memory_order_relaxed);
    if (n == OpenSample::kMaxSites ||
        std::find(watched_, watched_ + n, key) != watched_ + n) {
      return;
    }
    watched_[n] = key;
    watched_count_.store(n + 1, std::memory_order_release);
  };
  for (const ScanModel::Site& site : model.sites) {
    if (!site.shown.empty()) watch(SiteKey(site.shown.front().record));
  }
  for (const SiteGrowth& g : model.growing) watch(SiteKey(g.oldest));
}

int Reporter::SampleSites(uint64_t* keys) const {
  int n = watched_count_.load(std::memory_order_acquire);
  std::copy(watched_, watched_ + n, keys);
  return n;
}

bool Reporter::SampleChanged(const OpenSample& counts) const {
  const OpenSample& last = last_sample_;
  return !std::equal(std::begin(counts.open), std::end(counts.open),
                     std::begin(last.open)) ||
         !std::equal(std::begin(counts.kinds), std::end(counts.kinds),
                     std::begin(last.kinds)) ||
         counts.num_sites != last.num_sites ||
         !std::equal(counts.site_key, counts.site_key + counts.num_sites,
                     last.site_key) ||
         !std::equal(counts.site_open, counts.site_open + counts.num_sites,
                     last.site_open);
}

std::string Reporter::RenderSample(const OpenSample& counts) {
  return json_->RenderSample(SampleModel{&counts, !sample_written_});
}

void Reporter::MarkSampled(const OpenSample& counts) {
  sample_written_ = true;
  last_sample_ = counts;
}

void Reporter::OnScan(const ScanEvents& events) {
  ReportLock lock(&mu_, 0);
  ScanModel model = BuildScanModel(events);
  std::string text = renderer_->RenderScan(model);
  std::string json =
      ForJsonLog(text, [&](Renderer& r) { return r.RenderScan(model); });
  if (json_ != nullptr) {
    // Counted from the next scan on: this one has walked the table.
    WatchSites(model);
    if (events.sample != nullptr &&
        events.now_ns >= next_sample_ns_.load(std::memory_order_relaxed)) {
      if (!sample_written_ || SampleChanged(*events.sample)) {
        AddSample(RenderSample(*events.sample), /*first=*/false, &text, &json);
        MarkSampled(*events.sample);
      }
      // Scans come once a period, give or take the watchdog's wake-up
      // jitter: half a period of slack keeps one look per interval rather
      // than one every other interval.
      const int64_t period_ns = tracker_.options().ScanPeriodMs() * 1000000;
      const int64_t interval_ns =
          std::max(kSampleIntervalMs * 1000000, period_ns);
      next_sample_ns_.store(events.now_ns + interval_ns - period_ns / 2,
                            std::memory_order_relaxed);
    }
  }
  WriteBoth(text, json);
  if (events.metrics != nullptr) WriteMetrics(*events.metrics);
}

void Reporter::OnExit(const ExitSnapshot& snapshot) {
  // The watchdog may be in the middle of a scan; wait for it a little. If the
  // lock cannot be had (a thread died holding it), report anyway: the
  // symbolizer is then used without the lock, which is only unsafe if that
  // thread is still running, and it is not after exit started.
  ReportLock lock(&mu_, 1000);
  // The final sample, timed before the report: the timeline ends at what is
  // held at exit. Only where the process wrote samples, or writes a report
  // now (a clean short run still says nothing).
  std::string sample;
  if (json_ != nullptr && snapshot.sampled) {
    sample = RenderSample(snapshot.sample);
  }
  HeldModel model = BuildHeldModel(snapshot, /*at_exit=*/true);
  std::string text = renderer_->RenderHeld(model);
  std::string json =
      ForJsonLog(text, [&](Renderer& r) { return r.RenderHeld(model); });
  const bool reports = !(format_ == kFormatJson ? text : json).empty();
  if (!sample.empty() && (sample_written_ || reports)) {
    AddSample(sample, /*first=*/true, &text, &json);
    MarkSampled(snapshot.sample);
  }
  WriteBoth(text, json);
  // A finished process's gauges would say forever what it held at the end.
  if (!tracker_.options().metrics.empty()) {
    unlink(Log::ExpandPath(tracker_.options().metrics, getpid()).c_str());
  }
}

void Reporter::OnExitAbandoned(int64_t waited_ms) {
  // No allocation here: this runs on the exiting thread.
  char json[128];
  int json_n = snprintf(json, sizeof json,
                        "{\"type\":\"exit_abandoned\",\"pid\":%d,"
                        "\"stalled_ms\":%lld}\n",
                        static_cast<int>(context_.pid()),
                        static_cast<long long>(waited_ms));
  std::string_view json_line(
      json, json_n > 0 ? std::min<size_t>(json_n, sizeof json - 1) : 0);
  char text[320];
  int n = snprintf(text, sizeof text,
                   "leakwatch[%d]: exit report abandoned: the report "
                   "thread made no progress for %lld ms (a lock it "
                   "needs is held by a thread that will not run again: "
                   "exit() from a signal handler, or a thread stuck "
                   "in the dynamic loader or malloc)\n",
                   static_cast<int>(context_.pid()),
                   static_cast<long long>(waited_ms));
  std::string_view text_line(text,
                             n > 0 ? std::min<size_t>(n, sizeof text - 1) : 0);
  std::string_view line = format_ == kFormatJson ? json_line : text_line;
  if (!line.empty()) log_.WriteIfOpen(line);
  if (json_log_ != nullptr && !json_line.empty()) {
    json_log_->WriteIfOpen(json_line);
  }
}

void Reporter::OnPeriodic(const ExitSnapshot& snapshot) {
  ReportLock lock(&mu_, 0);
  HeldModel model = BuildHeldModel(snapshot, /*at_exit=*/false);
  std::string text = renderer_->RenderHeld(model);
  WriteBoth(text,
            ForJsonLog(text, [&](Renderer& r) { return r.RenderHeld(model); }));
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
  std::string text = renderer_->RenderHeld(model);
  WriteBoth(text,
            ForJsonLog(text, [&](Renderer& r) { return r.RenderHeld(model); }));
}

void Reporter::OnMisuse(const Misuse& misuse) {
  // Inside the program's call: wait a little for the watchdog if it is
  // writing, but never block the program for long.
  ReportLock lock(&mu_, 500);
  std::string text = FormatMisuse(misuse);
  WriteBoth(text, ForJsonLog(text, [&](Renderer& r) {
              return r.RenderMisuse(misuse);
            }));
}

void Reporter::OnNotice(std::string_view what, std::string_view text) {
  ReportLock lock(&mu_, 500);
  std::string line = renderer_->RenderNotice(what, text);
  WriteBoth(line, ForJsonLog(line, [&](Renderer& r) {
              return r.RenderNotice(what, text);
            }));
}

void Reporter::PrepareFork() { pthread_mutex_lock(&mu_); }
void Reporter::ParentAfterFork() { pthread_mutex_unlock(&mu_); }
void Reporter::ChildAfterFork() {
  context_.set_pid(getpid());
  sites_shown_.clear();
  // The child's samples and sites are its own; its first sample says its
  // options again.
  watched_count_.store(0, std::memory_order_relaxed);
  sample_written_ = false;
  last_sample_ = OpenSample();
  next_sample_ns_.store(INT64_MIN, std::memory_order_relaxed);
  pthread_mutex_unlock(&mu_);
}

}  // namespace leakwatch
