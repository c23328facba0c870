#include "report/text_report.h"

#include <errno.h>  // program_invocation_name (GNU)
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "report/metrics.h"
#include "tracker/clock.h"

namespace leakwatch {
namespace {

// Threads are created, handles acquired.
const char* AcquiredWord(const Record& r) {
  return r.kind->family == Family::kThread ? "created" : "acquired";
}

std::string ProgramName() {
  return program_invocation_name != nullptr ? program_invocation_name : "?";
}

// RAII for the reporter's mutex; at exit, waits at most `deadline_ms`.
class ReportLock {
 public:
  ReportLock(pthread_mutex_t* mu, int deadline_ms) : mu_(mu) {
    if (deadline_ms <= 0) {
      pthread_mutex_lock(mu_);
      held_ = true;
      return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (deadline_ms % 1000) * 1000000L;
    ts.tv_sec += deadline_ms / 1000 + ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    held_ = pthread_mutex_timedlock(mu_, &ts) == 0;
  }
  ~ReportLock() {
    if (held_) pthread_mutex_unlock(mu_);
  }
  bool held() const { return held_; }

 private:
  pthread_mutex_t* mu_;
  bool held_ = false;
};

}  // namespace

TextReporter::TextReporter(Tracker& tracker, Log& log)
    : tracker_(tracker), log_(log), pid_(getpid()) {
  start_wall_ms_ = WallClockMs();
  const std::string& path = tracker_.options().suppressions;
  if (!path.empty()) {
    std::vector<std::string> errors;
    suppressions_.Load(path, &errors);
    for (const std::string& e : errors) WriteAll(STDERR_FILENO, e + "\n");
  }
}

int TextReporter::SuppressionFor(const Record& r) {
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
  std::string start =
      r.kind->family == Family::kThread && r.code != 0 ? StartRoutine(r.code)
                                                       : "";
  it->second = suppressions_.Match(*r.kind, frames, start);
  return it->second;
}

std::string TextReporter::Prefix() const {
  return fmt::format("leakwatch[{}]: ", pid_);
}

std::string TextReporter::FormatDuration(int64_t ns) {
  if (ns < 0) ns = 0;
  int64_t ms = ns / 1000000;
  if (ms < 1000) return fmt::format("{} ms", ms);
  // Tenths of a second, truncated: 1999 ms is "1.9 s", 2000 ms is "2 s".
  int64_t tenths = ms / 100;
  if (tenths % 10 == 0) return fmt::format("{} s", tenths / 10);
  return fmt::format("{}.{} s", tenths / 10, tenths % 10);
}

void TextReporter::AppendStack(std::string* out, uint32_t stack_id) {
  Depot<uintptr_t>::View frames = tracker_.stacks().Get(stack_id);
  if (frames.size == 0) {
    out->append("    (no stack: LEAKWATCH_STACK_DEPTH=0 or capture failed)\n");
    return;
  }
  // A frame with inlined calls is several lines with its number, innermost
  // first, each inlined one marked (as LSan and llvm-symbolizer -i show it).
  for (uint32_t i = 0; i < frames.size; ++i) {
    tracker_.NoteExitProgress();
    for (const SymbolizedFrame& f :
         symbolizer_.SymbolizeInlined(frames.data[i])) {
      fmt::format_to(std::back_inserter(*out), "    #{} 0x{:x} in {}", i,
                     frames.data[i], f.function.empty() ? "??" : f.function);
      if (!f.file.empty()) {
        fmt::format_to(std::back_inserter(*out), " {}", f.file);
        if (f.line > 0) fmt::format_to(std::back_inserter(*out), ":{}", f.line);
      }
      if (!f.module.empty()) {
        fmt::format_to(std::back_inserter(*out), " ({}+0x{:x})", f.module,
                       f.module_offset);
      }
      if (f.inlined) out->append(" [inlined]");
      out->push_back('\n');
    }
  }
}

void TextReporter::AppendIdentity(std::string* out, const Record& r) {
  Depot<char>::View id = tracker_.strings().Get(r.identity.string_id);
  std::string text(id.data, id.size);
  if (r.identity.detail != 0 && r.kind->detail_label != nullptr) {
    if (!text.empty()) text += ' ';
    text += fmt::format("{}={}", r.kind->detail_label, r.identity.detail);
  }
  if (r.parent != 0) {
    fmt::format_to(std::back_inserter(*out), ", from connection 0x{:x}",
                   r.parent);
    if (!text.empty()) fmt::format_to(std::back_inserter(*out), " ({})", text);
  } else if (!text.empty()) {
    fmt::format_to(std::back_inserter(*out), ", {}", text);
  }
}

// "<kind> 0x<key> held 1.2 s (threshold 1 s) by thread N, <identity>"
std::string TextReporter::StartRoutine(uintptr_t code) {
  if (code == 0) return "??";
  // The symbolizer looks up pc - 1 (return addresses); this is an entry point.
  const SymbolizedFrame& f = symbolizer_.Symbolize(code + 1);
  return f.function.empty() ? fmt::format("0x{:x}", code) : f.function;
}

std::string TextReporter::Describe(const Record& r, int64_t now_ns,
                                   bool with_threshold) {
  std::string out;
  int64_t threshold_ms = tracker_.options().ThresholdMs(r.kind->family);
  bool idle_rule = FamilyUsesIdleTime(r.kind->family);
  if (r.kind->family == Family::kThread) {
    fmt::format_to(std::back_inserter(out), "{} 0x{:x}", r.kind->name, r.key);
    std::string tid =
        r.identity.detail != 0 ? fmt::format("tid {}, ", r.identity.detail) : "";
    if (with_threshold) {
      fmt::format_to(std::back_inserter(out),
                     " ({}start routine {}, created by thread {}) exited {} "
                     "ago and was never joined (threshold {})",
                     tid, StartRoutine(r.code), r.tid,
                     FormatDuration(now_ns - r.active_ns),
                     FormatDuration(threshold_ms * 1000000));
    } else {
      fmt::format_to(std::back_inserter(out),
                     " ({}start routine {}, created by thread {}) held {}, ",
                     tid, StartRoutine(r.code), r.tid,
                     FormatDuration(now_ns - r.acquired_ns));
      if (r.flags & kExited) {
        fmt::format_to(std::back_inserter(out), "exited {} ago",
                       FormatDuration(now_ns - r.active_ns));
      } else {
        out += "still running";
      }
    }
    return out;
  }
  if (idle_rule) {
    fmt::format_to(std::back_inserter(out), "{} 0x{:x} idle {}", r.kind->name,
                   r.key, FormatDuration(now_ns - r.active_ns));
    if (with_threshold) {
      fmt::format_to(std::back_inserter(out), " (threshold {}, held {})",
                     FormatDuration(threshold_ms * 1000000),
                     FormatDuration(now_ns - r.acquired_ns));
    } else {
      fmt::format_to(std::back_inserter(out), ", held {}",
                     FormatDuration(now_ns - r.acquired_ns));
    }
  } else {
    fmt::format_to(std::back_inserter(out), "{} 0x{:x} held {}", r.kind->name,
                   r.key, FormatDuration(now_ns - r.acquired_ns));
    if (with_threshold) {
      fmt::format_to(std::back_inserter(out), " (threshold {})",
                     FormatDuration(threshold_ms * 1000000));
    }
  }
  fmt::format_to(std::back_inserter(out), " by thread {}", r.tid);
  if (r.flags & kPinsParent) out += ", unbuffered, pins its connection";
  // Such a handle is reported live only once its parent is gone.
  if (with_threshold && r.kind->lives_with_parent && r.parent != 0) {
    out += ", outlived its connection";
  }
  AppendIdentity(&out, r);
  Depot<char>::View query = tracker_.strings().Get(r.query_id);
  if (query.size > 0) {
    fmt::format_to(std::back_inserter(out), ", {}: {}",
                   idle_rule ? "last SQL" : "SQL",
                   std::string_view(query.data, query.size));
  }
  return out;
}

std::string TextReporter::FormatScan(const ScanEvents& events) {
  std::string out;
  const std::string prefix = Prefix();
  // Overdue handles, site by site in order of first appearance.
  std::vector<uint64_t> order;
  std::map<uint64_t, std::vector<const Record*>> by_site;
  for (const Record& r : events.overdue) {
    if (SuppressionFor(r) >= 0) continue;
    auto [it, inserted] = by_site.try_emplace(SiteKey(r));
    if (inserted) order.push_back(SiteKey(r));
    it->second.push_back(&r);
  }
  for (uint64_t site : order) {
    const std::vector<const Record*>& records = by_site[site];
    int shown = 0;
    for (const Record* r : records) {
      if (shown == kWarningsPerSitePerScan) break;
      ++shown;
      std::string line = prefix + Describe(*r, events.now_ns, true);
      if (r->stack_id == 0) {
        out += line + "\n";
        AppendStack(&out, 0);
      } else if (sites_shown_.insert(site).second) {
        fmt::format_to(std::back_inserter(out), "{}, {} at (site {}):\n", line,
                       AcquiredWord(*r), r->stack_id);
        AppendStack(&out, r->stack_id);
      } else {
        fmt::format_to(std::back_inserter(out),
                       "{}, {} at site {} (stack shown above)\n", line,
                       AcquiredWord(*r), r->stack_id);
      }
    }
    if (records.size() > static_cast<size_t>(shown)) {
      const Record& r = *records.front();
      fmt::format_to(std::back_inserter(out),
                     "{}... and {} more {} from site {} past the threshold\n",
                     prefix, records.size() - shown, r.kind->name, r.stack_id);
    }
  }
  // Thread sites that keep growing: one line per site and doubling.
  for (const SiteGrowth& g : events.growing) {
    const Record& r = g.oldest;
    if (SuppressionFor(r) >= 0) continue;
    int64_t threshold_ms = tracker_.options().ThresholdMs(Family::kThread);
    if (g.previous == 0) {
      fmt::format_to(std::back_inserter(out),
                     "{}growing thread site {}: {} threads from one creation "
                     "site still running (created over {}, oldest {}, "
                     "threshold {}), start routine {}, created at:\n",
                     prefix, r.stack_id, g.count, FormatDuration(g.span_ns),
                     FormatDuration(events.now_ns - r.acquired_ns),
                     FormatDuration(threshold_ms * 1000000),
                     StartRoutine(r.code));
      AppendStack(&out, r.stack_id);
      sites_shown_.insert(SiteKey(r));
    } else {
      fmt::format_to(std::back_inserter(out),
                     "{}growing thread site {}: now {} threads still running "
                     "(doubled since the last warning; created over {}, "
                     "oldest {})\n",
                     prefix, r.stack_id, g.count, FormatDuration(g.span_ns),
                     FormatDuration(events.now_ns - r.acquired_ns));
    }
  }
  // Then the notes: handles reported in this or an earlier scan that were
  // released or used again since.
  // A site that floods gets kWarningsPerSitePerScan lines of each note type,
  // then one "... and N more" line.
  std::map<std::pair<uint64_t, int>, size_t> notes_per_site;
  for (const LiveNote& note : events.notes) {
    ++notes_per_site[{SiteKey(note.record), note.type}];
  }
  std::map<std::pair<uint64_t, int>, size_t> notes_shown;
  for (const LiveNote& note : events.notes) {
    const Record& r = note.record;
    if (SuppressionFor(r) >= 0) continue;  // its warning was not shown either
    std::pair<uint64_t, int> site{SiteKey(r), note.type};
    size_t shown = notes_shown[site]++;
    if (shown > static_cast<size_t>(kWarningsPerSitePerScan)) continue;
    if (shown == static_cast<size_t>(kWarningsPerSitePerScan)) {
      fmt::format_to(std::back_inserter(out),
                     "{}... and {} more {} from site {} {}\n", prefix,
                     notes_per_site[site] - shown, r.kind->name, r.stack_id,
                     note.type == LiveNote::kReleased ? "released"
                                                      : "in use again");
      continue;
    }
    if (note.type == LiveNote::kReleased) {
      fmt::format_to(std::back_inserter(out),
                     "{}{} 0x{:x} reported above was released after {}\n",
                     prefix, r.kind->name, r.key,
                     FormatDuration(note.at_ns - r.acquired_ns));
    } else {
      fmt::format_to(std::back_inserter(out),
                     "{}{} 0x{:x} reported above is in use again after {} "
                     "idle\n",
                     prefix, r.kind->name, r.key,
                     FormatDuration(note.at_ns - r.active_ns));
    }
  }
  if (events.notes_dropped > 0) {
    fmt::format_to(std::back_inserter(out),
                   "{}{} release notes were dropped (queue full)\n", prefix,
                   events.notes_dropped);
  }
  return out;
}

TextReporter::ExitModel TextReporter::BuildExitModel(
    const ExitSnapshot& snapshot, bool at_exit) {
  ExitModel model;
  // Suppressed handles are counted, not shown.
  model.held.reserve(snapshot.held.size());
  for (const Record& r : snapshot.held) {
    int rule = SuppressionFor(r);
    if (rule >= 0) {
      if (at_exit) suppressions_.Hit(rule, 1);
    } else {
      model.held.push_back(r);
    }
  }
  if (at_exit) unsuppressed_at_exit_ = model.held.size();
  // Connections kept busy by an unbuffered result still held.
  std::map<uintptr_t, size_t> pinned_by;
  for (const Record& r : model.held) {
    if ((r.flags & kPinsParent) && r.parent != 0) ++pinned_by[r.parent];
  }
  std::map<uint64_t, ExitGroup> groups;
  for (const Record& r : model.held) {
    auto [it, inserted] = groups.try_emplace(SiteKey(r));
    ExitGroup& g = it->second;
    if (inserted) {
      g.kind = r.kind;
      g.stack_id = r.stack_id;
      g.oldest_acquired_ns = r.acquired_ns;
      g.example = &r;
    }
    g.records.push_back(&r);
    // The example is the oldest record of the group.
    if (r.acquired_ns < g.oldest_acquired_ns) {
      g.oldest_acquired_ns = r.acquired_ns;
      g.example = &r;
    }
    int64_t threshold_ns =
        tracker_.options().ThresholdMs(r.kind->family) * 1000000;
    bool running_thread =
        r.kind->family == Family::kThread && !(r.flags & kExited);
    if (running_thread) ++g.running;
    int64_t since = FamilyUsesIdleTime(r.kind->family) || (r.flags & kExited)
                        ? r.active_ns
                        : r.acquired_ns;
    if (!running_thread && threshold_ns > 0 &&
        snapshot.now_ns - since >= threshold_ns) {
      ++g.past_threshold;
    }
    g.pinned += pinned_by.count(r.key);
  }
  for (auto& [key, g] : groups) {
    auto pins = pinned_by.find(g.example->key);
    g.example_pins = pins != pinned_by.end() ? pins->second : 0;
    model.groups.push_back(std::move(g));
  }
  std::sort(model.groups.begin(), model.groups.end(),
            [](const ExitGroup& a, const ExitGroup& b) {
              if (a.records.size() != b.records.size()) {
                return a.records.size() > b.records.size();
              }
              return a.oldest_acquired_ns < b.oldest_acquired_ns;
            });
  std::map<std::string, size_t> per_kind;
  for (const Record& r : model.held) ++per_kind[r.kind->name];
  model.per_kind.assign(per_kind.begin(), per_kind.end());
  std::sort(model.per_kind.begin(), model.per_kind.end(),
            [](const auto& a, const auto& b) {
              return a.second != b.second ? a.second > b.second
                                          : a.first < b.first;
            });
  return model;
}

std::string TextReporter::FormatExit(const ExitSnapshot& snapshot) {
  return FormatHeld(snapshot, /*at_exit=*/true);
}

std::string TextReporter::FormatPeriodic(const ExitSnapshot& snapshot) {
  return FormatHeld(snapshot, /*at_exit=*/false);
}

std::string TextReporter::FormatHeld(const ExitSnapshot& snapshot,
                                     bool at_exit) {
  std::string out;
  const std::string prefix = Prefix();
  if (at_exit) {
    ScanEvents pending;
    pending.now_ns = snapshot.now_ns;
    pending.notes = snapshot.notes;
    out += FormatScan(pending);
  }
  // The words that differ: at exit everything still held, periodically what
  // is held past its threshold now.
  const char* held_where = at_exit ? "still held at exit" : "held past the threshold";

  ExitModel model = BuildExitModel(snapshot, at_exit);
  const std::vector<Record>& held = model.held;
  if (!held.empty()) {
    fmt::format_to(std::back_inserter(out),
                   "{}{} for {}: {} handle{} {}, in {} group{} by acquisition "
                   "stack\n",
                   prefix, at_exit ? "exit report" : "periodic report",
                   ProgramName(), held.size(), held.size() == 1 ? "" : "s",
                   held_where,
                   model.groups.size(), model.groups.size() == 1 ? "" : "s");
    for (const ExitGroup& group : model.groups) {
      const ExitGroup* g = &group;
      int64_t threshold_ms = tracker_.options().ThresholdMs(g->kind->family);
      std::string threshold_text =
          threshold_ms > 0
              ? fmt::format("{} past the {} {}threshold", g->past_threshold,
                            FormatDuration(threshold_ms * 1000000),
                            FamilyUsesIdleTime(g->kind->family) ? "idle " : "")
              : std::string("live threshold off");
      if (g->kind->family == Family::kThread) {
        size_t exited = g->records.size() - g->running;
        if (g->running == 0) {
          threshold_text += "; exited, never joined";
        } else if (exited == 0) {
          threshold_text = "growing site, still running";
        } else {
          threshold_text += fmt::format(
              "; {} exited, never joined, {} still running (growing site)",
              exited, g->running);
        }
      }
      if (g->pinned > 0) {
        threshold_text += fmt::format("; {} pinned by unbuffered results",
                                      g->pinned);
      }
      fmt::format_to(std::back_inserter(out),
                     "\n{}{} {} {} from site {} (oldest held {}; {}), "
                     "acquired at:\n",
                     prefix, g->records.size(), g->kind->name, held_where,
                     g->stack_id,
                     FormatDuration(snapshot.now_ns - g->oldest_acquired_ns),
                     threshold_text);
      AppendStack(&out, g->stack_id);
      std::string example_text = Describe(*g->example, snapshot.now_ns, false);
      if (g->example_pins > 0) {
        example_text +=
            fmt::format(", pinned by {} unbuffered result{}", g->example_pins,
                        g->example_pins == 1 ? "" : "s");
      }
      fmt::format_to(std::back_inserter(out), "    example: {}\n",
                     example_text);
    }
    std::string totals;
    for (const auto& [name, count] : model.per_kind) {
      if (!totals.empty()) totals += ", ";
      totals += fmt::format("{} {}", count, name);
    }
    fmt::format_to(std::back_inserter(out),
                   "\n{}SUMMARY: {} handle{} {}: {}\n", prefix, held.size(),
                   held.size() == 1 ? "" : "s", held_where, totals);
  }
  if (!at_exit) return out;
  if (tracker_.misuse_count() > 0) {
    fmt::format_to(std::back_inserter(out),
                   "{}{} misuse report{} above (double release, use after "
                   "close)\n",
                   prefix, tracker_.misuse_count(),
                   tracker_.misuse_count() == 1 ? "" : "s");
  }
  size_t suppressed = 0;
  for (const Suppressions::Rule& rule : suppressions_.rules()) {
    suppressed += rule.hits;
  }
  if (suppressed > 0) {
    fmt::format_to(std::back_inserter(out),
                   "{}suppressions used ({} still held at exit, not shown):\n",
                   prefix, suppressed);
    for (const Suppressions::Rule& rule : suppressions_.rules()) {
      if (rule.hits == 0) continue;
      fmt::format_to(std::back_inserter(out), "{}  {} {}:{} ({})\n", prefix,
                     rule.hits, rule.type, rule.pattern, rule.where);
    }
  }
  if (snapshot.shards_skipped > 0) {
    fmt::format_to(std::back_inserter(out),
                   "{}exit report incomplete: {} of {} table shards were "
                   "locked by interrupted threads and skipped\n",
                   prefix, snapshot.shards_skipped, ShardedTable::kShards);
  }
  if (tracker_.options().stats) {
    std::string stats;
    for (int k = 0; k < kMaxKinds; ++k) {
      const KindDesc* kind = snapshot.kinds[k];
      if (kind == nullptr) continue;
      if (!stats.empty()) stats += ", ";
      stats += fmt::format("{} acquired {} released {}", kind->name,
                           snapshot.totals.acquired[k],
                           snapshot.totals.released[k]);
      if (snapshot.totals.replaced[k] > 0) {
        stats += fmt::format(" replaced {}", snapshot.totals.replaced[k]);
      }
    }
    if (stats.empty()) stats = "no handles seen";
    if (tracker_.unknown_releases() > 0) {
      stats += fmt::format(", releases of unknown handles {}",
                           tracker_.unknown_releases());
    }
    fmt::format_to(std::back_inserter(out), "{}stats: {}", prefix, stats);
    if (snapshot.dropped > 0) {
      fmt::format_to(std::back_inserter(out), " (dropped {} for lack of memory)",
                     snapshot.dropped);
    }
    out.push_back('\n');
  }
  return out;
}

void TextReporter::WriteMetrics(const MetricsSnapshot& snapshot) {
  MetricsInput input;
  input.pid = getpid();
  input.program = ProgramName();
  input.timestamp_ms = WallClockMs();
  for (int k = 0; k < kMaxKinds; ++k) {
    const KindDesc* kind = snapshot.kinds[k];
    if (kind == nullptr) continue;
    KindMetrics m;
    m.kind = kind->name;
    m.family = FamilyName(kind->family);
    m.open = snapshot.open[k];
    m.peak_open = snapshot.peak_open[k];
    m.acquired = snapshot.totals.acquired[k];
    m.released = snapshot.totals.released[k] + snapshot.totals.replaced[k];
    m.past_threshold = snapshot.past_threshold[k];
    m.reported_total = snapshot.reported[k];
    input.kinds.push_back(std::move(m));
  }
  input.threads_live = snapshot.threads_live;
  for (const MetricsSnapshot::Connections& c : snapshot.connections) {
    ConnectionMetrics m;
    m.kind = c.kind->name;
    Depot<char>::View id = tracker_.strings().Get(c.identity_string_id);
    m.labels = IdentityLabels(std::string(id.data, id.size));
    m.open = c.open;
    m.idle = c.idle;
    m.in_use = c.in_use;
    m.pinned = c.pinned;
    input.connections.push_back(std::move(m));
  }
  std::string error;
  std::string path = Log::ExpandPath(tracker_.options().metrics, getpid());
  if (!WriteMetricsFile(path, FormatMetrics(input), &error) &&
      !metrics_error_said_) {
    metrics_error_said_ = true;
    WriteAll(STDERR_FILENO,
             "leakwatch: cannot write LEAKWATCH_METRICS: " + error + "\n");
  }
}

void TextReporter::OnScan(const ScanEvents& events) {
  ReportLock lock(&mu_, 0);
  std::string text = tracker_.options().format == kFormatJson
                         ? FormatScanJson(events)
                         : FormatScan(events);
  if (!text.empty()) log_.Write(text);
  if (events.metrics != nullptr) WriteMetrics(*events.metrics);
}

void TextReporter::OnExit(const ExitSnapshot& snapshot) {
  // The watchdog may be in the middle of a scan; wait for it a little. If the
  // lock cannot be had (a thread died holding it), report anyway: the
  // symbolizer is then used without the lock, which is only unsafe if that
  // thread is still running, and it is not after exit started.
  ReportLock lock(&mu_, 1000);
  std::string text = tracker_.options().format == kFormatJson
                         ? FormatExitJson(snapshot)
                         : FormatExit(snapshot);
  if (!text.empty()) log_.Write(text);
  // A finished process's gauges would say forever what it held at the end.
  if (!tracker_.options().metrics.empty()) {
    unlink(Log::ExpandPath(tracker_.options().metrics, getpid()).c_str());
  }
}

void TextReporter::OnExitAbandoned(int64_t waited_ms) {
  // No allocation here: this runs on the exiting thread.
  char line[256];
  int n = tracker_.options().format == kFormatJson
              ? snprintf(line, sizeof line,
                         "{\"type\":\"exit_abandoned\",\"pid\":%d,"
                         "\"stalled_ms\":%lld}\n",
                         static_cast<int>(pid_),
                         static_cast<long long>(waited_ms))
              : snprintf(line, sizeof line,
                         "leakwatch[%d]: exit report abandoned: the report "
                         "thread made no progress for %lld ms (a lock it "
                         "needs is held by a thread that will not run again: "
                         "exit() from a signal handler, or a thread stuck "
                         "in the dynamic loader or malloc)\n",
                         static_cast<int>(pid_),
                         static_cast<long long>(waited_ms));
  if (n > 0) log_.WriteIfOpen(std::string_view(line, std::min<size_t>(n, sizeof line - 1)));
}

void TextReporter::OnPeriodic(const ExitSnapshot& snapshot) {
  ReportLock lock(&mu_, 0);
  std::string text = tracker_.options().format == kFormatJson
                         ? FormatHeldJson(snapshot, /*at_exit=*/false)
                         : FormatPeriodic(snapshot);
  if (!text.empty()) log_.Write(text);
}

void TextReporter::OnMisuse(const Misuse& misuse) {
  // Inside the program's call: wait a little for the watchdog if it is
  // writing, but never block the program for long.
  ReportLock lock(&mu_, 500);
  log_.Write(FormatMisuse(misuse));
}

void TextReporter::PrepareFork() { pthread_mutex_lock(&mu_); }
void TextReporter::ParentAfterFork() { pthread_mutex_unlock(&mu_); }
void TextReporter::ChildAfterFork() {
  pid_ = getpid();
  sites_shown_.clear();
  pthread_mutex_unlock(&mu_);
}

}  // namespace leakwatch
